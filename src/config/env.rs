//! Secrets come from the environment: `.env` is read from the working directory only (never a
//! parent's, which may belong to someone else), and a variable's name is echoed in a message
//! only when it looks like a NAME — a value put where a name belongs (a password in
//! `password_env`) is never shown, and neither is any line of `.env`.

use super::ConfigError;

/// Loads `./.env` into the environment if it exists; variables already set win.
pub fn load_dotenv() -> Result<(), ConfigError> {
    let path = std::path::Path::new(".env");
    let err = match dotenvy::from_path(path) {
        Ok(()) => return Ok(()),
        Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => e,
    };
    let why = match err {
        dotenvy::Error::LineParse(line, _) => {
            // Which line, never what it says: it may hold a secret.
            let n = std::fs::read_to_string(path)
                .ok()
                .and_then(|t| t.lines().position(|l| l == line))
                .map(|i| format!("line {}", i + 1))
                .unwrap_or_else(|| "a line".into());
            format!("{n} is not KEY=value (its text is not shown)")
        }
        dotenvy::Error::Io(e) => format!("cannot read it ({})", e.kind()),
        _ => "a variable in it cannot be read (not shown)".into(),
    };
    Err(ConfigError::DotEnv(why))
}

/// `var` as a message may show it: itself when it looks like a variable NAME (upper case words
/// joined by `_`, such as CLICKHOUSE_PASSWORD), else a placeholder — it may be the secret itself.
pub fn shown(var: &str) -> String {
    let mut words = var.split('_').filter(|w| !w.is_empty());
    let conventional = var
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        && var.len() <= 64
        && !var.starts_with(|c: char| c.is_ascii_digit())
        // Words of a name are short, and digits only in short ones ("V2", "DB1"); a long run of
        // letters and digits is what generated secrets look like.
        && words.all(|w| w.len() <= 16 && (w.len() <= 4 || !w.bytes().any(|b| b.is_ascii_digit())));
    if conventional && !var.is_empty() {
        var.to_string()
    } else {
        "a variable (its name is not shown: it looks like a value, not a NAME such as \
         CLICKHOUSE_PASSWORD)"
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_shown_values_are_not() {
        for name in [
            "CLICKHOUSE_PASSWORD",
            "DISCORD_TOKEN",
            "CH_PW",
            "DB1_PASSWORD_V2",
            "_X",
        ] {
            assert_eq!(shown(name), name);
        }
        for value in [
            "hunter2",
            "Xk9pQ2mZ7vL4wR8t",
            "AKIAIOSFODNN7EXAMPLE",
            "S3CRET",
            "ch_password",
            "1PASSWORD",
        ] {
            assert!(!shown(value).contains(value), "{value}");
        }
    }
}
