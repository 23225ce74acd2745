//! Renderers of the [`Card`](crate::domain::Card): plain/colour terminal text and JSON. Every
//! untrusted string passes [`crate::domain::display`], the one boundary, before it is shown.
//! (The Discord embed renderer lives with the bot.)

use crate::domain::display;

pub mod incident;
pub mod terminal;

/// The card as pretty JSON; every string shown through [`display::plain`], so a consumer that
/// prints a field (`jq -r`) never prints a control character or a raw byte.
pub fn json(card: &crate::domain::Card) -> String {
    let mut v = serde_json::to_value(card).expect("a card always serialises");
    sanitize(&mut v);
    serde_json::to_string_pretty(&v).expect("a value always serialises")
}

fn sanitize(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::String(s) => *s = display::plain(s),
        Value::Array(a) => a.iter_mut().for_each(sanitize),
        Value::Object(o) => o.values_mut().for_each(sanitize),
        _ => {}
    }
}
