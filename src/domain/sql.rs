//! Safe SQL text for the statements chops suggests or runs: quoting that is exact and one line.
//!
//! Names are the server's bytes (see [`super::text`]). Every byte that could end a token, break a
//! line, hide itself or close a Discord code block is written as an escape (`\\`, `` \` ``, `\'`,
//! `\n`, `\t`, `\r`, `\0`, `\xHH`; `@` too), so a printed statement is one line and, pasted back into
//! ClickHouse, names exactly the object it was built from.

use super::text::{self, is_hidden};

/// `name` as a back-quoted ClickHouse identifier (any name is representable this way).
pub fn ident(name: &str) -> String {
    quote(name, '`')
}

/// `s` as a single-quoted ClickHouse string literal.
pub fn string(s: &str) -> String {
    quote(s, '\'')
}

fn quote(s: &str, q: char) -> String {
    let bytes = text::to_bytes(s);
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push(q);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                '\0' => out.push_str("\\0"),
                c if c == q => {
                    out.push('\\');
                    out.push(c);
                }
                // In a string literal a backtick is written as a byte, so no run of three
                // backticks (a Discord code fence) can ever appear in a statement; `@` too, so
                // no statement can hold a mention (`@everyone`, `<@id>`).
                '`' => out.push_str("\\x60"),
                '@' => out.push_str("\\x40"),
                c if is_hidden(c) => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\x{b:02X}"));
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out.push(q);
    out
}

/// `db`.`table`
pub fn table(database: &str, table: &str) -> String {
    format!("{}.{}", ident(database), ident(table))
}

/// A backup name that is unique per disk: `chops-<cluster>-<replica>-<YYYYmmddTHHMMSS>`, with
/// anything outside `[A-Za-z0-9_.-]` replaced by `_`.
pub fn backup_name(cluster: &str, replica: &str, stamp: &str) -> String {
    let clean = |s: &str| {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect::<String>()
    };
    format!("chops-{}-{}-{}", clean(cluster), clean(replica), stamp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::text::from_bytes;

    #[test]
    fn quoting_escapes_everything_that_could_end_a_token() {
        assert_eq!(ident("events"), "`events`");
        assert_eq!(ident("we`ird"), "`we\\`ird`");
        assert_eq!(string("it's"), "'it\\'s'");
        assert_eq!(string("a\\'; DROP"), "'a\\\\\\'; DROP'");
        assert_eq!(table("db", "t"), "`db`.`t`");
    }

    #[test]
    fn statements_are_one_line_and_fence_free() {
        assert_eq!(ident("a\nb\tc\r\0"), "`a\\nb\\tc\\r\\0`");
        assert_eq!(ident("\x1b[2J"), "`\\x1B[2J`");
        assert_eq!(ident("```"), "`\\`\\`\\``");
        assert_eq!(string("```"), "'\\x60\\x60\\x60'");
        assert_eq!(ident("@everyone"), "`\\x40everyone`");
        assert_eq!(ident("é"), "`é`");
        assert_eq!(ident("a\u{202E}b"), "`a\\xE2\\x80\\xAEb`");
        assert_eq!(ident(&from_bytes(&[b'x', 0xff])), "`x\\xFF`");
        assert_eq!(string(&from_bytes(&[0xc3])), "'\\xC3'");
    }

    #[test]
    fn backup_names_are_safe() {
        assert_eq!(
            backup_name("prod", "ch-1:9000", "20261125T222716"),
            "chops-prod-ch-1_9000-20261125T222716"
        );
        assert_eq!(backup_name("a'b", "r/1", "x"), "chops-a_b-r_1-x");
    }
}
