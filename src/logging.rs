//! Logging of the `chops` binary (stderr, filtered by `CHOPS_LOG`, default `warn`).
//!
//! One record, one line, in both formats: JSON escapes by itself; in text, every field value and
//! the message pass through the one display function, so a value with a newline (an alert
//! annotation, a server's error text) cannot start a line of its own that reads like a record.
//! Colour codes only when stderr is a terminal: a file or a log shipper gets plain text.

use std::fmt;
use std::io::IsTerminal;

use tracing::field::Field;
use tracing::Subscriber;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Sets the global subscriber: `CHOPS_LOG_FORMAT=json` gives one JSON object per line.
pub fn init() {
    let filter = || EnvFilter::try_from_env("CHOPS_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    if std::env::var("CHOPS_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter())
            .with_writer(std::io::stderr)
            .init();
    } else {
        let ansi = std::io::stderr().is_terminal();
        let _ = tracing::subscriber::set_global_default(text(filter(), ansi, std::io::stderr));
    }
}

/// The text format: one line per record, colour only when `ansi`.
pub fn text<W>(filter: EnvFilter, ansi: bool, writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .fmt_fields(tracing_subscriber::fmt::format::debug_fn(field).delimited(" "))
        .with_writer(writer)
        .finish()
}

/// `name=value` (the message as is), the value shown through the display boundary.
fn field(w: &mut Writer<'_>, field: &Field, value: &dyn fmt::Debug) -> fmt::Result {
    let shown = crate::domain::display::plain(&format!("{value:?}"));
    match field.name() {
        "message" => write!(w, "{shown}"),
        name => write!(w, "{}={shown}", name.trim_start_matches("r#")),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Everything written, shared with the test.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'w self) -> Buffer {
            self.clone()
        }
    }

    #[test]
    fn a_hostile_value_cannot_add_a_line_nor_colour() {
        let out = Buffer::default();
        let sub = text(EnvFilter::new("info"), false, out.clone());
        let annotation = "backup failed\n2026-12-03T12:00:00.000000Z ERROR chops: fake record";
        tracing::subscriber::with_default(sub, || {
            tracing::warn!(summary = %annotation, quoted = ?annotation, "incident\nheader");
            tracing::info!(header = annotation, "second");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].contains(" WARN "), "{text}");
        assert!(lines[0].contains("incident\\nheader"), "{text}");
        assert!(
            lines[0].contains("summary=backup failed\\n2026-12-03T12:00:00.000000Z ERROR"),
            "{text}"
        );
        assert!(lines[1].contains(" INFO "), "{text}");
        assert!(!text.contains('\x1b'), "no colour when not asked: {text:?}");
    }
}
