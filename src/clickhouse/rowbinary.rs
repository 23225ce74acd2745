//! A strict decoder for one row made by `formatRowNoNewline('RowBinaryWithNamesAndTypes', *)`.
//!
//! Why: chops sends several read-only per-replica queries in one request, each part's rows packed
//! into one `String` column, and the `clickhouse` crate's RowBinary decoder is private.
//!
//! Nothing else checks types on this path, so this does: a struct's field names must equal the
//! column names in order; a value is read only as the Rust type its declared column type maps to
//! (a `UInt64` never as an `f64`); every byte must be consumed. The input is untrusted: lengths
//! and the column count are checked against the bytes left, nothing is allocated for them, and
//! no input panics. Strings are lent to the visitor straight from the input.

use serde::de::{self, DeserializeOwned, DeserializeSeed, SeqAccess, Visitor};
use serde::forward_to_deserialize_any;

use crate::domain::text;

/// Most columns a row may declare.
const MAX_COLUMNS: u64 = 256;
/// Longest column name or type shown in an error.
const SHOWN: usize = 60;

/// Why a row could not be decoded (messages show no raw bytes; names are clipped).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("varint longer than 64 bits")]
    Varint,
    #[error("{0} bytes needed, {1} left")]
    Short(u64, usize),
    #[error("{0} columns declared (at most {MAX_COLUMNS}, and no more than bytes left)")]
    Columns(u64),
    #[error("{0} bytes left after the row")]
    Trailing(usize),
    #[error("{fields} fields for {columns} columns")]
    Count { fields: usize, columns: usize },
    #[error("column {index} is `{column}` but the field is `{field}`")]
    Name {
        index: usize,
        column: String,
        field: String,
    },
    #[error("column `{column}` of type `{ty}` cannot be read as {want}")]
    Type {
        column: String,
        ty: String,
        want: &'static str,
    },
    #[error("byte {0} where 0 or 1 was expected")]
    Flag(u8),
    #[error("a row must be a struct or a tuple")]
    NotARow,
    #[error("{0}")]
    Custom(String),
}

impl de::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error::Custom(text::clip(&msg.to_string(), 2 * SHOWN))
    }
}

/// Decode one row made by `formatRowNoNewline('RowBinaryWithNamesAndTypes', *)` into `T`.
pub fn row<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let mut r = Reader(bytes);
    let count = r.varint()?;
    if count > MAX_COLUMNS || count > r.0.len() as u64 {
        return Err(Error::Columns(count));
    }
    let count = count as usize;
    let names = r.skip_strings(count)?;
    let types = r.skip_strings(count)?;
    let mut row = Row {
        names,
        types,
        values: r,
        count,
    };
    let value = T::deserialize(&mut row)?;
    match row.values.0.len() {
        0 => Ok(value),
        left => Err(Error::Trailing(left)),
    }
}

/// Untrusted bytes, read front to back.
#[derive(Clone, Copy)]
struct Reader<'de>(&'de [u8]);

impl<'de> Reader<'de> {
    fn take(&mut self, n: u64) -> Result<&'de [u8], Error> {
        let left = self.0.len();
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= left)
            .ok_or(Error::Short(n, left))?;
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N as u64)?);
        Ok(out)
    }

    /// Unsigned LEB128.
    fn varint(&mut self) -> Result<u64, Error> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let [b] = self.array()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(Error::Varint);
            }
            value |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Error::Varint)
    }

    fn string(&mut self) -> Result<&'de [u8], Error> {
        let n = self.varint()?;
        self.take(n)
    }

    /// Skips `count` strings; a reader over just them.
    fn skip_strings(&mut self, count: usize) -> Result<Reader<'de>, Error> {
        let start = self.0;
        for _ in 0..count {
            self.string()?;
        }
        Ok(Reader(&start[..start.len() - self.0.len()]))
    }
}

/// Untrusted name or type text as shown in an error.
fn shown(bytes: &[u8]) -> String {
    text::clip(&text::from_bytes(bytes), SHOWN)
}

/// A column type without its `LowCardinality(…)` and `Nullable(…)` wrappers (RowBinary writes
/// `LowCardinality(T)` as `T`), and whether each value follows a NULL marker.
fn unwrap_type(ty: &[u8]) -> (bool, &[u8]) {
    let inner = |ty, wrapper: &str| -> Option<&[u8]> {
        <[u8]>::strip_prefix(ty, wrapper.as_bytes())?.strip_suffix(b")")
    };
    let ty = inner(ty, "LowCardinality(").unwrap_or(ty);
    match inner(ty, "Nullable(") {
        Some(t) => (true, t),
        None => (false, ty),
    }
}

/// The row: column names and types (each walked in step with the values), and the values.
struct Row<'de> {
    names: Reader<'de>,
    types: Reader<'de>,
    values: Reader<'de>,
    count: usize,
}

impl Row<'_> {
    /// Field names must equal the column names, in order.
    fn check_names(&self, fields: &[&str]) -> Result<(), Error> {
        let mut names = self.names;
        for index in 0..self.count.max(fields.len()) {
            let column = if index < self.count {
                Some(names.string()?)
            } else {
                None
            };
            let field = fields.get(index).copied();
            if column != field.map(str::as_bytes) {
                let column = column.map_or_else(|| "(none)".into(), shown);
                let field = field.unwrap_or("(none)").into();
                return Err(Error::Name {
                    index,
                    column,
                    field,
                });
            }
        }
        Ok(())
    }
}

impl<'de> de::Deserializer<'de> for &mut Row<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(Error::NotARow)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.check_names(fields)?;
        let left = self.count;
        visitor.visit_seq(Columns { row: self, left })
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, Error> {
        if len != self.count {
            return Err(Error::Count {
                fields: len,
                columns: self.count,
            });
        }
        let left = self.count;
        v.visit_seq(Columns { row: self, left })
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_tuple(len, visitor)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 u8 u16 u32 u64 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq map enum identifier ignored_any
    }
}

/// The columns not yet read, in order.
struct Columns<'a, 'de> {
    row: &'a mut Row<'de>,
    left: usize,
}

impl<'de> SeqAccess<'de> for Columns<'_, 'de> {
    type Error = Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        s: S,
    ) -> Result<Option<S::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let name = self.row.names.string()?;
        let ty = self.row.types.string()?;
        let (null, base) = unwrap_type(ty);
        let r = &mut self.row.values;
        s.deserialize(Value {
            r,
            name,
            ty,
            null,
            base,
        })
        .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// One column's value.
struct Value<'a, 'de> {
    r: &'a mut Reader<'de>,
    name: &'de [u8],
    ty: &'de [u8],
    null: bool,
    base: &'de [u8],
}

impl Value<'_, '_> {
    /// Ok if the column is not Nullable and its type is one of `ok`.
    fn expect(&self, want: &'static str, ok: &[&str]) -> Result<(), Error> {
        match !self.null && ok.iter().any(|t| t.as_bytes() == self.base) {
            true => Ok(()),
            false => Err(self.mismatch(want)),
        }
    }

    fn mismatch(&self, want: &'static str) -> Error {
        Error::Type {
            column: shown(self.name),
            ty: shown(self.ty),
            want,
        }
    }

    fn flag(&mut self) -> Result<bool, Error> {
        match self.r.array()? {
            [0] => Ok(false),
            [1] => Ok(true),
            [b] => Err(Error::Flag(b)),
        }
    }
}

macro_rules! fixed {
    ($($method:ident $visit:ident $t:ty: $($ty:literal)|+;)*) => {$(
        fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
            self.expect(stringify!($t), &[$($ty),+])?;
            v.$visit(<$t>::from_le_bytes(self.r.array()?))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Value<'_, 'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(self.mismatch("a field of this type"))
    }

    fixed! {
        deserialize_u8 visit_u8 u8: "UInt8" | "Bool";
        deserialize_u16 visit_u16 u16: "UInt16";
        deserialize_u32 visit_u32 u32: "UInt32";
        deserialize_u64 visit_u64 u64: "UInt64";
        deserialize_i8 visit_i8 i8: "Int8";
        deserialize_i16 visit_i16 i16: "Int16";
        deserialize_i32 visit_i32 i32: "Int32";
        deserialize_i64 visit_i64 i64: "Int64";
        deserialize_f32 visit_f32 f32: "Float32";
        deserialize_f64 visit_f64 f64: "Float64";
    }

    fn deserialize_bool<V: Visitor<'de>>(mut self, v: V) -> Result<V::Value, Error> {
        self.expect("bool", &["Bool", "UInt8"])?;
        v.visit_bool(self.flag()?)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.expect("bytes", &["String"])?;
        v.visit_borrowed_bytes(self.r.string()?)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(v)
    }

    /// Invalid UTF-8 goes to the visitor as bytes (a `String` field then fails; `lossy` copes).
    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.expect("a string", &["String"])?;
        let bytes = self.r.string()?;
        match std::str::from_utf8(bytes) {
            Ok(s) => v.visit_borrowed_str(s),
            Err(_) => v.visit_borrowed_bytes(bytes),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_str(v)
    }

    fn deserialize_option<V: Visitor<'de>>(mut self, v: V) -> Result<V::Value, Error> {
        if !self.null {
            return Err(self.mismatch("an Option"));
        }
        match self.flag()? {
            true => v.visit_none(),
            false => v.visit_some(Value {
                null: false,
                ..self
            }),
        }
    }

    forward_to_deserialize_any! {
        char unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

    fn unhex(s: &str) -> Vec<u8> {
        let byte = |i| u8::from_str_radix(&s[i..i + 2], 16).expect("test hex");
        (0..s.len()).step_by(2).map(byte).collect()
    }

    /// The little-endian bytes of each value, one after the other.
    macro_rules! le {
        ($($v:expr),*) => { [$(&$v.to_le_bytes()[..]),*].concat() };
    }

    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn string(out: &mut Vec<u8>, s: &[u8]) {
        varint(out, s.len() as u64);
        out.extend_from_slice(s);
    }

    /// Test-only encoder: the header for `cols` (name, type), then the values, already encoded.
    fn enc(cols: &[(&str, &str)], values: &[u8]) -> Vec<u8> {
        let mut out = vec![];
        varint(&mut out, cols.len() as u64);
        for s in cols.iter().map(|c| c.0).chain(cols.iter().map(|c| c.1)) {
            string(&mut out, s.as_bytes());
        }
        out.extend_from_slice(values);
        out
    }

    /// The message of the error decoding `bytes` as `T` gives.
    fn err<T: DeserializeOwned>(bytes: &[u8]) -> String {
        match row::<T>(bytes) {
            Ok(_) => panic!("decoded"),
            Err(e) => e.to_string(),
        }
    }

    #[derive(Deserialize)]
    struct VersionRow {
        #[serde(deserialize_with = "crate::clickhouse::lossy")]
        version: String,
        uptime: u64,
    }

    /// `SELECT '25.3.1.1' AS version, toUInt64(12345) AS uptime`, as the engine formats it.
    const VERSION: &str = "020776657273696F6E06757074696D6506537472696E670655496E743634\
                           0832352E332E312E313930000000000000";

    #[test]
    fn engine_row() {
        let r: VersionRow = row(&unhex(VERSION)).unwrap();
        assert_eq!((r.version.as_str(), r.uptime), ("25.3.1.1", 12345));
    }

    #[derive(Deserialize)]
    struct Mixed {
        a: Option<String>,
        b: Option<u64>,
        #[serde(deserialize_with = "crate::clickhouse::lossy")]
        c: String,
        d: String,
        e: bool,
        f: f64,
        g: i64,
    }

    /// `SELECT CAST(NULL AS Nullable(String)) AS a, CAST(7 AS Nullable(UInt64)) AS b,
    /// unhex('61FF62') AS c, toLowCardinality('lc') AS d, true AS e, 1.5 AS f, toInt64(-2) AS g`
    const MIXED: &str = "070161016201630164016501660167104E756C6C61626C6528537472696E6729104E75\
        6C6C61626C652855496E7436342906537472696E6706537472696E6704426F6F6C07466C6F617436340549\
        6E743634010007000000000000000361FF62026C6301000000000000F83FFEFFFFFFFFFFFFFF";

    #[test]
    fn engine_row_with_nulls_and_invalid_utf8() {
        let r: Mixed = row(&unhex(MIXED)).unwrap();
        assert_eq!((r.a, r.b), (None, Some(7)));
        assert_eq!(text::to_bytes(&r.c), b"a\xFFb");
        assert_eq!((r.d.as_str(), r.e, r.f, r.g), ("lc", true, 1.5, -2));
    }

    type All = (
        i8,
        i16,
        i32,
        i64,
        u8,
        u16,
        u32,
        u64,
        f32,
        f64,
        bool,
        String,
        Option<u64>,
        Option<String>,
    );
    const ALL: [(&str, &str); 14] = [
        ("a", "Int8"),
        ("b", "Int16"),
        ("c", "Int32"),
        ("d", "Int64"),
        ("e", "Bool"),
        ("f", "UInt16"),
        ("g", "UInt32"),
        ("h", "UInt64"),
        ("i", "Float32"),
        ("j", "Float64"),
        ("k", "UInt8"),
        ("l", "LowCardinality(String)"),
        ("m", "Nullable(UInt64)"),
        ("n", "LowCardinality(Nullable(String))"),
    ];

    #[test]
    fn every_type_positionally() {
        let mut v = le!(-2i8, -3i16, -4i32, -5i64, 1u8, 6u16, 7u32, 8u64, 9.5f32, 10.25f64, 1u8);
        string(&mut v, b"lc");
        v.extend([1, 0]);
        string(&mut v, b"s");
        let r = row::<All>(&enc(&ALL, &v)).unwrap();
        assert_eq!(
            (r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7),
            (-2, -3, -4, -5, 1, 6, 7, 8)
        );
        assert_eq!((r.8, r.9, r.10), (9.5, 10.25, true));
        assert_eq!((r.11, r.12, r.13), ("lc".into(), None, Some("s".into())));
    }

    #[test]
    fn names_types_and_lengths_are_checked() {
        let v = [1, b'x', 8, 0, 0, 0, 0, 0, 0, 0];
        let cols = |a| enc(&[("version", "String"), (a, "UInt64")], &v);
        let msg = err::<VersionRow>(&cols("uptim"));
        assert_eq!(msg, "column 1 is `uptim` but the field is `uptime`");
        let long = "x".repeat(1000);
        assert!(err::<VersionRow>(&cols(&long)).len() < 200);
        let extra = enc(
            &[("version", "String"), ("uptime", "UInt64"), ("z", "UInt8")],
            &v,
        );
        assert_eq!(
            err::<VersionRow>(&extra),
            "column 2 is `z` but the field is `(none)`"
        );
        assert_eq!(err::<(String,)>(&extra), "1 fields for 3 columns");
        #[derive(Deserialize)]
        struct AsFloat {
            #[serde(deserialize_with = "crate::clickhouse::lossy")]
            _version: String,
            _uptime: f64,
        }
        let renamed = enc(&[("_version", "String"), ("_uptime", "UInt64")], &v);
        let msg = err::<AsFloat>(&renamed);
        assert_eq!(
            msg,
            "column `_uptime` of type `UInt64` cannot be read as f64"
        );
        let null = enc(&[("n", "Nullable(UInt64)")], &[0; 9]);
        assert!(err::<(u64,)>(&null).contains("cannot be read as u64"));
        assert!(err::<(Option<u64>,)>(&enc(&[("n", "UInt64")], &[0; 8])).contains("an Option"));
        assert!(err::<(serde_json::Value,)>(&null).contains("a field of this type"));
        assert_eq!(
            err::<serde::de::IgnoredAny>(&null),
            "a row must be a struct or a tuple"
        );
        assert_eq!(
            err::<(bool,)>(&enc(&[("b", "UInt8")], &[2])),
            "byte 2 where 0 or 1 was expected"
        );
    }

    #[test]
    fn every_byte_is_accounted_for() {
        let bytes = unhex(VERSION);
        let trailing = [&bytes[..], &[0]].concat();
        assert_eq!(err::<VersionRow>(&trailing), "1 bytes left after the row");
        assert_eq!(
            err::<VersionRow>(&bytes[..bytes.len() - 1]),
            "8 bytes needed, 7 left"
        );
        assert!((0..bytes.len()).all(|n| row::<VersionRow>(&bytes[..n]).is_err()));
        let mixed = unhex(MIXED);
        assert!((0..mixed.len()).all(|n| row::<Mixed>(&mixed[..n]).is_err()));
        let mut huge = enc(&[("s", "String")], &[]);
        varint(&mut huge, 1 << 40);
        huge.extend(b"abc");
        assert_eq!(
            err::<(String,)>(&huge),
            "1099511627776 bytes needed, 3 left"
        );
        let mut many = vec![];
        varint(&mut many, u64::MAX);
        assert!(err::<(String,)>(&many).contains("columns declared"));
        let cols: Vec<(&str, &str)> = vec![("c", "UInt8"); 300];
        assert!(err::<(u8,)>(&enc(&cols, &[0; 300])).contains("300 columns"));
        assert_eq!(err::<(u8,)>(&[0xFF; 11]), "varint longer than 64 bits");
    }

    #[derive(Deserialize)]
    struct Random {
        s: String,
        u: u64,
        f: f64,
        b: u8,
        i: i64,
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = row::<VersionRow>(&bytes);
            let _ = row::<Mixed>(&bytes);
            let _ = row::<All>(&bytes);
            let _ = row::<All>(&enc(&ALL, &bytes));
        }

        #[test]
        fn round_trip(s in ".{0,40}", u: u64, f: f64, b: u8, i: i64) {
            let mut v = vec![];
            string(&mut v, s.as_bytes());
            v.extend(le!(u, f, b, i));
            let types = ["String", "UInt64", "Float64", "UInt8", "Int64"];
            let cols: Vec<_> = ["s", "u", "f", "b", "i"].into_iter().zip(types).collect();
            let r: Random = row(&enc(&cols, &v)).unwrap();
            prop_assert_eq!((r.s, r.u, r.f.to_bits(), r.b, r.i), (s, u, f.to_bits(), b, i));
        }
    }
}
