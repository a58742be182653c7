//! Whether a message reached the conversation, from the platform's own record of it: for a send
//! whose answer was lost, or that an earlier run was stopped during. Two reads, both in the
//! official SDK (platform-client-sdk-javascript 259.0.0, `build/docs/ConversationsApi.md` and the
//! models in `build/index.d.ts`):
//! - `GET /api/v2/conversations/messages/{conversationId}` (`getConversationsMessage`) →
//!   `MessageConversation`: each participant's `messages` (`MessageDetails`: `messageId`,
//!   `messageTime`, `media[].id`);
//! - `POST /api/v2/conversations/messages/{conversationId}/messages/bulk`
//!   (`postConversationsMessageMessagesBulk`, a body of message ids, 1000 at most) →
//!   `TextMessageListing`: `entities[]` of `MessageData` (`direction`, `textBody`).

use std::collections::HashSet;

use reqwest::Method;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::api::Api;
use crate::error::{Error, Result, Stage};

/// The ids one bulk request may name.
const BULK_MAX: usize = 1000;

/// What one send posts: the media message of a media id, or a text message (the caption of
/// the media message of `after`).
#[derive(Debug, Clone, Copy)]
pub enum Part<'a> {
    Media(&'a str),
    Text { text: &'a str, after: &'a str },
}

/// A message of the conversation: its id, and when the platform took it (if it said).
#[derive(Debug, Clone)]
struct Message {
    id: String,
    time: Option<OffsetDateTime>,
}

/// What the conversation holds that could be the message.
#[derive(Debug)]
pub enum Found {
    /// The message's id.
    One(String),
    Nothing,
    /// This many messages could be it: no guess is made.
    Several(usize),
}

#[derive(Deserialize)]
struct Conversation {
    #[serde(default)]
    participants: Vec<Participant>,
}

#[derive(Deserialize)]
struct Participant {
    #[serde(default)]
    messages: Vec<Details>,
}

#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Details {
    message_id: Option<String>,
    message_time: Option<String>,
    #[serde(default)]
    media: Vec<MediaRef>,
}

#[derive(Clone, Deserialize)]
struct MediaRef {
    id: Option<String>,
}

#[derive(Deserialize)]
struct Listing {
    #[serde(default)]
    entities: Vec<Data>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    id: Option<String>,
    direction: Option<String>,
    text_body: Option<String>,
}

/// An RFC 3339 time from an answer (`messageTime`).
fn parse_time(s: Option<&str>) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s?, &time::format_description::well_known::Rfc3339).ok()
}

/// Looks for `part` among the messages of `conversation_id`. A media message is the one that
/// carries the media id. A text is an outbound message without media whose `textBody` is the
/// text, stamped no earlier than the media message of `after` (the caption follows it; both
/// times read from the same answer, so in the same precision), and not in `taken` (messages
/// known to be other sends').
pub async fn find(
    api: &Api,
    conversation_id: &str,
    part: Part<'_>,
    taken: &HashSet<String>,
) -> Result<Found> {
    let url = api
        .endpoints
        .api_segments(&["api", "v2", "conversations", "messages", conversation_id])
        .map_err(|why| Error::protocol(Stage::Send, why))?;
    let c: Conversation = api.read(Stage::Send, Method::GET, url, None).await?;
    let all: Vec<Details> = c
        .participants
        .into_iter()
        .flat_map(|p| p.messages)
        .collect();
    let carrying = |id: &str| {
        all.iter()
            .find(|d| d.media.iter().any(|m| m.id.as_deref() == Some(id)))
            .and_then(|d| message(d.clone()))
    };
    match part {
        Part::Media(id) => Ok(carrying(id).map_or(Found::Nothing, |m| Found::One(m.id))),
        Part::Text { text, after } => {
            let after = carrying(after).and_then(|m| m.time);
            let candidates: Vec<Message> = all
                .into_iter()
                .filter(|d| d.media.is_empty())
                .filter_map(message)
                .filter(|m| !taken.contains(&m.id) && not_before(m.time, after))
                .collect();
            same_text(api, conversation_id, candidates, text).await
        }
    }
}

fn message(d: Details) -> Option<Message> {
    Some(Message {
        time: parse_time(d.message_time.as_deref()),
        id: d.message_id.filter(|id| !id.is_empty())?,
    })
}

fn not_before(t: Option<OffsetDateTime>, after: Option<OffsetDateTime>) -> bool {
    match (t, after) {
        (Some(t), Some(a)) => t >= a,
        _ => true,
    }
}

/// The candidates that are outbound messages of exactly `text`.
async fn same_text(
    api: &Api,
    conversation_id: &str,
    candidates: Vec<Message>,
    text: &str,
) -> Result<Found> {
    if candidates.is_empty() {
        return Ok(Found::Nothing);
    }
    if candidates.len() > BULK_MAX {
        return Ok(Found::Several(candidates.len()));
    }
    let url = api
        .endpoints
        .api_segments(&[
            "api",
            "v2",
            "conversations",
            "messages",
            conversation_id,
            "messages",
            "bulk",
        ])
        .map_err(|why| Error::protocol(Stage::Send, why))?;
    let ids: Vec<&str> = candidates.iter().map(|m| m.id.as_str()).collect();
    let body = serde_json::json!(ids);
    let listing: Listing = api
        .read(Stage::Send, Method::POST, url, Some(&body))
        .await?;
    let same: HashSet<String> = listing
        .entities
        .into_iter()
        .filter(|d| {
            d.direction
                .as_deref()
                .is_some_and(|x| x.eq_ignore_ascii_case("outbound"))
                && d.text_body.as_deref() == Some(text)
        })
        .filter_map(|d| d.id)
        .collect();
    let mut hits: Vec<Message> = candidates
        .into_iter()
        .filter(|m| same.contains(&m.id))
        .collect();
    Ok(match hits.len() {
        0 => Found::Nothing,
        1 => Found::One(hits.remove(0).id),
        n => Found::Several(n),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caption_is_not_older_than_its_media_message() {
        let t = |s: &str| parse_time(Some(s));
        let media = t("2026-01-01T10:00:00.800+00:00");
        assert!(not_before(t("2026-01-01T10:00:00.800Z"), media));
        assert!(not_before(t("2026-01-01T10:00:05Z"), media));
        assert!(!not_before(t("2026-01-01T10:00:00.799Z"), media));
        // Unknown times filter nothing out.
        assert!(not_before(None, media) && not_before(t("2026-01-01T09:00:00Z"), None));
    }
}
