//! The one display boundary: every string that came from a server, a discovered host or config
//! passes through here before a terminal, an embed or a log line shows it.
//!
//! Control characters (C0, DEL, C1, newline, tab), raw bytes and invisible or bidirectional
//! formatting characters become visible escapes, so a name can neither add lines, move the
//! cursor, recolour the screen nor hide what it is. Discord text also escapes markdown and
//! breaks `@` mentions (messages set `allowed_mentions` to none as well).

use crate::domain::text::escape;

/// Where the text is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A terminal, a log line, JSON, an embed title or footer (no markdown there).
    Plain,
    /// Discord text that renders markdown (embed description and fields, messages).
    Discord,
}

/// `s` made safe to show on `target`.
pub fn show(s: &str, target: Target) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if let Some(e) = escape(c) {
            out.push_str(&e);
            continue;
        }
        if target == Target::Discord {
            match c {
                // Brackets stop masked links; `(`, `)` and `#` are left alone (noise, and our lines
                // never start with untrusted text, so no heading or quote can begin).
                '\\' | '*' | '_' | '~' | '`' | '|' | '>' | '<' | '[' | ']' => {
                    out.push('\\');
                    out.push(c);
                }
                // A zero-width space after `@` stops @everyone, @here and <@id> mentions.
                '@' => out.push_str("@\u{200B}"),
                c => out.push(c),
            }
        } else {
            out.push(c);
        }
    }
    // Discord reads `#`, `-`, `1.` as headings and lists at the start of a line, and our lines
    // may start with a name: escape the first character of such a start.
    if target == Target::Discord {
        let digits = out.chars().take_while(|c| c.is_ascii_digit()).count();
        let list = digits > 0 && out[digits..].starts_with(". ");
        if out.starts_with('#') || out.starts_with('-') || out.starts_with('+') {
            out.insert(0, '\\');
        } else if list {
            out.insert(digits, '\\');
        }
    }
    // A name with "\x1b" written out shows the same as one with the real byte: that is fine,
    // the SQL carries the exact bytes.
    out
}

/// Plain target (terminal, logs, JSON, embed titles).
pub fn plain(s: &str) -> String {
    show(s, Target::Plain)
}

/// Discord markdown target.
pub fn discord(s: &str) -> String {
    show(s, Target::Discord)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::text::from_bytes;

    #[test]
    fn controls_become_visible() {
        assert_eq!(
            plain("a\nb\tc\x1b[2J\x7f\u{85}"),
            "a\\nb\\tc\\x1B[2J\\x7F\\x85"
        );
        assert_eq!(plain("x\u{202E}y\u{200B}"), "x\\u{202E}y\\u{200B}");
        assert_eq!(plain(&from_bytes(&[b'n', 0xff])), "n\\xFF");
        assert_eq!(plain("ünïcode ok"), "ünïcode ok");
    }

    #[test]
    fn discord_escapes_markdown_and_mentions() {
        assert_eq!(discord("@everyone"), "@\u{200B}everyone");
        assert_eq!(discord("<@123>"), "\\<@\u{200B}123\\>");
        assert_eq!(discord("```x```"), "\\`\\`\\`x\\`\\`\\`");
        assert_eq!(
            discord("**b** _i_ [l](u)"),
            "\\*\\*b\\*\\* \\_i\\_ \\[l\\](u)"
        );
        assert!(!discord("a\nb").contains('\n'));
        assert_eq!(discord("# big"), "\\# big");
        assert_eq!(discord("-# small"), "\\-# small");
        assert_eq!(discord("12. item"), "12\\. item");
        assert_eq!(discord("v1.2"), "v1.2");
    }
}
