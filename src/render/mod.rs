//! Renderers of the [`Card`](crate::domain::Card): plain/colour terminal text and JSON.
//! (The Discord embed renderer lives with the bot.)

pub mod terminal;

/// The card as pretty JSON.
pub fn json(card: &crate::domain::Card) -> String {
    serde_json::to_string_pretty(card).expect("a card always serialises")
}
