//! Offers: each runnable next step of a card stored as a typed action behind an opaque id, so a
//! button (under a command's card or an incident's) carries only the id and what runs is read back
//! from the store, never from the click.

use crate::domain::guard;
use crate::store::Store;

/// Store each runnable step's action and return (offer id, button label); none when actions are
/// not enabled for the cluster (default deny: no roles, no buttons), and none of a kind no
/// Discord role may run. Used under a command's card
/// and under an incident's card alike: a click is guarded the same way wherever the button is.
pub async fn offers(
    store: &Store,
    policy: &guard::Policy,
    card: &crate::domain::Card,
) -> Vec<(String, String)> {
    if !policy.enabled() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for a in card
        .next_steps
        .iter()
        .filter_map(|s| s.action.as_ref())
        .filter(|a| policy.offered_in_discord(a.kind()))
        .take(25)
    {
        let json = serde_json::to_string(a).expect("an action serialises");
        match store
            .put_offer(json, a.cluster().to_string(), crate::clock::now(), 3600)
            .await
        {
            Ok(id) => out.push((id, a.title())),
            Err(e) => tracing::warn!(error = %e, "could not store a card button"),
        }
    }
    out
}
