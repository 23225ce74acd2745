//! Safe SQL text for the statements chops suggests or runs: quoting and name validation.

/// `name` as a back-quoted ClickHouse identifier (any name is representable this way).
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`"))
}

/// `s` as a single-quoted ClickHouse string literal.
pub fn string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `db`.`table`
pub fn table(database: &str, table: &str) -> String {
    format!("{}.{}", ident(database), ident(table))
}

/// A qualified table name typed by a person: `db.table`, either part optionally back-quoted.
/// Rejects anything else (spaces, semicolons, more parts) so that it can never smuggle SQL.
pub fn parse_table_name(input: &str) -> Result<(String, String), String> {
    let input = input.trim();
    let parts = split_qualified(input)
        .ok_or_else(|| format!("'{input}' is not a table name of the form db.table"))?;
    match parts.as_slice() {
        [db, t] if !db.is_empty() && !t.is_empty() => Ok((db.clone(), t.clone())),
        _ => Err(format!(
            "'{input}' is not a table name of the form db.table"
        )),
    }
}

fn split_qualified(s: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'`') {
            chars.next();
            loop {
                match chars.next()? {
                    '`' => break,
                    c if c.is_control() => return None,
                    c => part.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_ascii_alphanumeric() || c == '_' {
                    part.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            if part.is_empty() || part.starts_with(|c: char| c.is_ascii_digit()) {
                return None;
            }
        }
        parts.push(part);
        match chars.next() {
            None => return Some(parts),
            Some('.') => continue,
            Some(_) => return None,
        }
    }
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

    #[test]
    fn quoting_escapes_everything_that_could_end_a_token() {
        assert_eq!(ident("events"), "`events`");
        assert_eq!(ident("we`ird"), "`we\\`ird`");
        assert_eq!(string("it's"), "'it\\'s'");
        assert_eq!(string("a\\'; DROP"), "'a\\\\\\'; DROP'");
        assert_eq!(table("db", "t"), "`db`.`t`");
    }

    #[test]
    fn table_names() {
        let ok = [
            ("db.t", ("db", "t")),
            ("`my db`.`t-1`", ("my db", "t-1")),
            (" a_1.B2 ", ("a_1", "B2")),
        ];
        for (input, (d, t)) in ok {
            assert_eq!(
                parse_table_name(input),
                Ok((d.to_string(), t.to_string())),
                "{input}"
            );
        }
        for bad in [
            "t",
            "db.t; DROP TABLE x",
            "db.t.x",
            "db .t",
            "1db.t",
            "db.",
            "`db.t",
            "db.t --",
            "",
        ] {
            assert!(parse_table_name(bad).is_err(), "{bad} must be rejected");
        }
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
