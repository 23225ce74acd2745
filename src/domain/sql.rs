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
    fn backup_names_are_safe() {
        assert_eq!(
            backup_name("prod", "ch-1:9000", "20261125T222716"),
            "chops-prod-ch-1_9000-20261125T222716"
        );
        assert_eq!(backup_name("a'b", "r/1", "x"), "chops-a_b-r_1-x");
    }
}
