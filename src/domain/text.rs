//! Text that came from outside: server bytes kept exactly inside a `String`, clipped, first lines.
//!
//! ClickHouse `String` values are bytes, not UTF-8. [`from_bytes`] turns any bytes into a `String`
//! without losing any: valid UTF-8 stays as it is, and each byte that is not (or that falls in the
//! reserved range below) becomes one *raw-byte* character `U+10FF00 + byte`. [`to_bytes`] reverses
//! it exactly, so SQL naming such an object is built from the server's own bytes (`sql::ident`),
//! while display code shows raw bytes as `\xHH` (`domain::display`). The reserved range is the end
//! of the last private-use plane; a real name using it still round-trips, byte by byte.

/// First character of the raw-byte range (`U+10FF00 + byte`).
const RAW_BASE: u32 = 0x10_FF00;

/// The raw byte a character stands for, if it is a raw-byte character.
pub fn raw_byte(c: char) -> Option<u8> {
    let v = c as u32;
    (RAW_BASE..=RAW_BASE + 0xFF)
        .contains(&v)
        .then(|| (v - RAW_BASE) as u8)
}

fn raw_char(b: u8) -> char {
    char::from_u32(RAW_BASE + b as u32).expect("U+10FF00..=U+10FFFF are valid chars")
}

/// Any bytes as a `String`, losslessly (see the module doc).
pub fn from_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        // Only a character from U+100000 up (led by 0xF4) can be in the reserved range: text
        // without one is copied whole, not char by char.
        if !valid.as_bytes().contains(&0xF4) {
            out.push_str(valid);
        } else {
            keep_reserved(valid, &mut out);
        }
        for &b in chunk.invalid() {
            out.push(raw_char(b));
        }
    }
    out
}

/// `valid` onto `out`, a real character in the reserved range as its bytes.
fn keep_reserved(valid: &str, out: &mut String) {
    for c in valid.chars() {
        if raw_byte(c).is_some() {
            // A real character in the reserved range: keep its bytes, so to_bytes is exact.
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push(raw_char(b));
            }
        } else {
            out.push(c);
        }
    }
}

/// The exact bytes a [`from_bytes`] string came from (plain strings: their UTF-8).
pub fn to_bytes(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        match raw_byte(c) {
            Some(b) => out.push(b),
            None => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out
}

/// How a hidden character is shown (`\n`, `\t`, `\r`, `\xHH`, `\u{XXXX}`); None: as itself.
/// The display boundary (`domain::display`) writes these; [`clip`] counts them.
pub fn escape(c: char) -> Option<String> {
    if !is_hidden(c) {
        return None;
    }
    Some(match (c, raw_byte(c)) {
        ('\n', _) => "\\n".into(),
        ('\t', _) => "\\t".into(),
        ('\r', _) => "\\r".into(),
        (_, Some(b)) => format!("\\x{b:02X}"),
        (c, None) if (c as u32) < 0x100 => format!("\\x{:02X}", c as u32),
        (c, None) => format!("\\u{{{:04X}}}", c as u32),
    })
}

/// Characters `c` takes once shown.
fn shown_width(c: char) -> usize {
    escape(c).map_or(1, |e| e.len())
}

/// `s` (already shown) cut to at most `max` characters, the cut marked "…": for limits counted in
/// characters, such as Discord's. [`clip`] is for text not yet shown.
pub fn clip_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `s` cut so that, shown, it takes at most `max` characters, the cut marked `…(N more bytes)`.
pub fn clip(s: &str, max: usize) -> String {
    // Printable ASCII shows as itself, one character a byte: the common case, counted at once.
    if s.len() <= max && s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return s.to_string();
    }
    let width: usize = s.chars().map(shown_width).sum();
    if width <= max {
        return s.to_string();
    }
    // Room for the marker: "…(" + the count's digits + " more bytes)".
    let room = max.saturating_sub(14 + s.len().to_string().len());
    let mut used = 0;
    let mut end = 0;
    for (i, c) in s.char_indices() {
        let w = shown_width(c);
        if used + w > room {
            break;
        }
        used += w;
        end = i + c.len_utf8();
    }
    format!("{}…({} more bytes)", &s[..end], s.len() - end)
}

/// The first line of a server message (no stack trace), cut to `max` characters with an ellipsis.
pub fn first_line(text: &str, max: usize) -> String {
    let line = text
        .split(", Stack trace")
        .next()
        .unwrap_or(text)
        .lines()
        .next()
        .unwrap_or("")
        .trim();
    if line.chars().count() > max {
        format!("{}…", line.chars().take(max).collect::<String>())
    } else {
        line.to_string()
    }
}

/// Characters a reader cannot see or that change how text around them looks: controls (C0, DEL,
/// C1), line/paragraph separators, zero-width and bidirectional formatting characters, raw bytes.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || raw_byte(c).is_some()
        || matches!(c,
            '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

/// Longest summary line a card shows for server text.
pub const SUMMARY_MAX: usize = 300;
/// Longest evidence line a card shows for server text.
pub const EVIDENCE_MAX: usize = 2000;

/// 64-bit FNV-1a of `bytes`: a digest that is the same across processes, restarts and builds
/// (unlike the std hasher), for keys chops stores or sends (alert fingerprints, message nonces).
pub fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_exactly() {
        let cases: Vec<Vec<u8>> = vec![
            b"plain".to_vec(),
            vec![0xff, b'a', 0xc3],
            "é\u{10FF41}x".as_bytes().to_vec(),
            vec![0xf4, 0x8f, 0xbd, 0x81],
            vec![],
        ];
        for b in cases {
            assert_eq!(to_bytes(&from_bytes(&b)), b, "{b:?}");
        }
        assert_eq!(from_bytes(b"ok"), "ok");
        assert_eq!(
            raw_byte(from_bytes(&[0xfe]).chars().next().unwrap()),
            Some(0xfe)
        );
    }

    proptest::proptest! {
        /// Bytes that spell reserved characters (0xF4 0x8F 0xBC..0xBF ..) among any others.
        #[test]
        fn any_bytes_round_trip(b in proptest::collection::vec(proptest::prop_oneof![
            proptest::strategy::Just(0xF4u8),
            proptest::strategy::Just(0x8F),
            proptest::strategy::Just(0xBD),
            proptest::strategy::Just(0x81),
            proptest::prelude::any::<u8>(),
        ], 0..48)) {
            proptest::prop_assert_eq!(to_bytes(&from_bytes(&b)), b);
        }
    }

    #[test]
    fn clip_chars_counts_characters() {
        assert_eq!(clip_chars("abcdef", 4), "abc…");
        assert_eq!(clip_chars("abc", 4), "abc");
        assert_eq!(clip_chars("ééééé", 3), "éé…");
    }

    #[test]
    fn clipping_marks_the_cut() {
        assert_eq!(clip("abcdef", 10), "abcdef");
        let long = "x".repeat(100);
        assert_eq!(clip(&long, 40), "xxxxxxxxxxxxxxxxxxxxxxx…(77 more bytes)");
        assert!(clip(&long, 40).chars().count() <= 40);
        // Escapes count as shown: a string of raw bytes is cut four times earlier.
        let raw = from_bytes(&[0xff; 100]);
        let c = clip(&raw, 40);
        assert_eq!(
            c.chars().filter(|&c| raw_byte(c).is_some()).count(),
            5,
            "{c:?}"
        );
        assert_eq!(clip("ééé", 100), "ééé");
        assert_eq!(first_line("a\nb", 10), "a");
        assert_eq!(first_line("abc, Stack trace: x", 2), "ab…");
    }
}
