//! Speaking first: incident messages in a channel (post, then edit when resolved), through the
//! bot's REST client — or stdout (`chops serve --no-discord`): each message and each update one
//! plain line, whatever the log level, so nothing marked delivered goes unseen.

use std::sync::{Arc, OnceLock};

use poise::serenity_prelude as serenity;

use futures_util::future::BoxFuture;

use super::render;
use crate::app::{Post, Speak, SpeakError};
use crate::domain::display::Target;
use crate::domain::incident::{Counted, Incident};
use crate::render::incident::storm_text;

/// Discord's limit for a message's content.
const CONTENT_MAX: usize = 2000;

fn failed(e: serenity::Error) -> SpeakError {
    SpeakError::Discord(Box::new(e))
}

/// Where incidents go.
pub struct Speaker {
    /// None: stdout (`--no-discord`).
    http: Option<OnceLock<Arc<serenity::Http>>>,
}

impl Speaker {
    /// Posts nowhere; each message is printed on stdout instead (one line).
    pub fn nowhere() -> Speaker {
        Speaker { http: None }
    }

    /// Posts to Discord once [`Speaker::connect`] has handed it the bot's REST client.
    pub fn discord() -> Speaker {
        Speaker {
            http: Some(OnceLock::new()),
        }
    }

    pub fn connect(&self, http: Arc<serenity::Http>) {
        if let Some(cell) = &self.http {
            let _ = cell.set(http);
        }
    }

    fn client(&self) -> Result<Option<&Arc<serenity::Http>>, SpeakError> {
        match &self.http {
            None => Ok(None),
            Some(cell) => cell.get().map(Some).ok_or(SpeakError::NotConnected),
        }
    }

    async fn post_now(&self, post: Post<'_>) -> Result<Option<u64>, SpeakError> {
        let Post {
            channel,
            incidents,
            counted,
            card,
            note,
            offers,
        } = post;
        let Some(first) = incidents.first() else {
            return Ok(None);
        };
        let (Some(http), Some(channel)) = (self.client()?, channel) else {
            print_line(first.id, "", incidents, counted);
            tracing::info!(
                incident = first.id,
                together = incidents.len() + counted.alerts,
                verdict = card.map(|c| c.verdict.label()).unwrap_or("-"),
                header = %storm_text(incidents, counted, Target::Plain, CONTENT_MAX),
                "incident (not posted: no Discord; printed on stdout)"
            );
            return Ok(None);
        };
        let mut content = storm_text(incidents, counted, Target::Discord, CONTENT_MAX);
        if let Some(n) = note {
            let n = format!("\n{}", crate::domain::display::discord(n));
            if content.chars().count() + n.chars().count() <= CONTENT_MAX {
                content.push_str(&n);
            }
        }
        // Discord drops a second message with the same nonce for a few minutes: a post whose
        // answer was lost (timeout, restart) and is sent again does not show twice.
        // The nonce names the whole batch (a grown batch is a new message, not the old one).
        let nonce = nonce_of(incidents);
        let link_of = (incidents.len() == 1).then_some(first);
        let mut msg = serenity::CreateMessage::new()
            .content(content)
            .nonce(serenity::Nonce::String(nonce))
            .enforce_nonce(true)
            .allowed_mentions(serenity::CreateAllowedMentions::new())
            .components(render::incident_rows(link_of, offers));
        if let Some(card) = card {
            let e = render::embed(card);
            msg = msg.embed(e.to_builder()).add_files(e.files());
        }
        let sent = serenity::ChannelId::new(channel)
            .send_message(http.as_ref(), msg)
            .await
            .map_err(failed)?;
        Ok(Some(sent.id.get()))
    }

    /// The card stays: only the header is rewritten.
    async fn edit_now(
        &self,
        channel: Option<u64>,
        message: Option<u64>,
        incidents: &[Incident],
        counted: Counted,
    ) -> Result<(), SpeakError> {
        let (Some(http), Some(channel), Some(message)) = (self.client()?, channel, message) else {
            let id = incidents.first().map_or(0, |i| i.id);
            print_line(id, " update", incidents, counted);
            return Ok(());
        };
        let edit = serenity::EditMessage::new()
            .content(storm_text(incidents, counted, Target::Discord, CONTENT_MAX))
            .allowed_mentions(serenity::CreateAllowedMentions::new());
        serenity::ChannelId::new(channel)
            .edit_message(http.as_ref(), serenity::MessageId::new(message), edit)
            .await
            .map_err(failed)?;
        Ok(())
    }
}

impl Speak for Speaker {
    fn posts_to_discord(&self) -> bool {
        self.http.is_some()
    }

    fn post<'a>(&'a self, post: Post<'a>) -> BoxFuture<'a, Result<Option<u64>, SpeakError>> {
        Box::pin(self.post_now(post))
    }

    fn edit<'a>(
        &'a self,
        channel: Option<u64>,
        message: Option<u64>,
        incidents: &'a [Incident],
        counted: Counted,
    ) -> BoxFuture<'a, Result<(), SpeakError>> {
        Box::pin(self.edit_now(channel, message, incidents, counted))
    }
}

/// `--no-discord`: one message as one line on stdout, "chops: incident 12: …" (an update:
/// "chops: incident 12 update: ✅ Resolved: …"). The header's own line breaks are shown as `\n`
/// by the display function, like any control character, so one message is one line.
fn print_line(id: i64, what: &str, incidents: &[Incident], counted: Counted) {
    use std::io::Write;
    let header = storm_text(incidents, counted, Target::Plain, CONTENT_MAX);
    let line = format!(
        "chops: incident {id}{what}: {}\n",
        crate::domain::display::plain(&header)
    );
    // One write under the lock: lines of two messages never interleave. A closed stdout must
    // not stop the poster (println! would panic).
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
}

/// At most 25 characters (Discord's limit): a digest of the incidents a message shows.
fn nonce_of(incidents: &[Incident]) -> String {
    let bytes = incidents.iter().flat_map(|i| {
        i.id.to_le_bytes()
            .into_iter()
            .chain(i.created_at.to_le_bytes())
    });
    format!("chops{:016x}", crate::domain::text::fnv1a(bytes))
}
