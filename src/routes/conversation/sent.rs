//! Whether a message reached the conversation, from the platform's own record of it: for a send
//! whose answer was lost, or that an earlier run was stopped during. Two reads, both in the
//! official SDK (platform-client-sdk-javascript 259.0.0, `build/docs/ConversationsApi.md` and the
//! models in `build/index.d.ts`):
//! - `GET /api/v2/conversations/messages/{conversationId}` (`getConversationsMessage`) →
//!   `MessageConversation`: each participant's `messages` (`MessageDetails`: `messageId`,
//!   `messageTime`), the ids to look up;
//! - `POST /api/v2/conversations/messages/{conversationId}/messages/bulk?useNormalizedMessage=true`
//!   (`postConversationsMessageMessagesBulk`, a body of message ids, 1000 at most) →
//!   `TextMessageListing`: `entities[]` of `MessageData` (`direction`, `status`,
//!   `normalizedMessage.text`, `normalizedMessage.content[].attachment.id`).
//!
//! `MessageDetails.media` and `MessageData.textBody`/`media` are deprecated ("use
//! …/messages/{messageId} to get the associated media") and may be empty: read when present,
//! never needed.

use std::collections::{HashMap, HashSet};

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
    /// Deprecated: an optional extra.
    #[serde(default)]
    media: Vec<IdRef>,
}

#[derive(Clone, Deserialize)]
struct IdRef {
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
    status: Option<String>,
    normalized_message: Option<Normalized>,
    /// Deprecated: an optional extra.
    text_body: Option<String>,
    /// Deprecated: an optional extra.
    #[serde(default)]
    media: Vec<IdRef>,
}

#[derive(Deserialize)]
struct Normalized {
    text: Option<String>,
    #[serde(default)]
    content: Vec<Content>,
}

#[derive(Deserialize)]
struct Content {
    attachment: Option<IdRef>,
}

/// One message of the conversation, from both reads.
#[derive(Debug, Clone, Default)]
struct Message {
    id: String,
    time: Option<OffsetDateTime>,
    outbound: bool,
    /// `failed` (or `delivery-failed`): it did not go out.
    failed: bool,
    text: Option<String>,
    attachments: Vec<String>,
}

impl Message {
    fn carries(&self, media_id: &str) -> bool {
        self.attachments.iter().any(|a| a == media_id)
    }
}

/// An RFC 3339 time from an answer (`messageTime`).
fn parse_time(s: Option<&str>) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s?, &time::format_description::well_known::Rfc3339).ok()
}

/// Whether a `MessageData.status` says the message did not go out.
pub fn failed_status(status: Option<&str>) -> bool {
    status.is_some_and(|s| {
        s.eq_ignore_ascii_case("failed") || s.eq_ignore_ascii_case("delivery-failed")
    })
}

/// Looks for `part` among the messages of `conversation_id` this client sent (outbound, not
/// failed). A media message is the one whose attachment is the media id. A text is one without
/// attachments whose text is the caption, stamped no earlier than the media message of `after`
/// (the caption follows it), and not in `taken` (messages known to be other sends').
pub async fn find(
    api: &Api,
    conversation_id: &str,
    part: Part<'_>,
    taken: &HashSet<String>,
) -> Result<Found> {
    let all = messages(api, conversation_id).await?;
    let sent: Vec<&Message> = all.iter().filter(|m| m.outbound && !m.failed).collect();
    let carrying = |id: &str| sent.iter().find(|m| m.carries(id)).copied();
    match part {
        Part::Media(id) => Ok(carrying(id).map_or(Found::Nothing, |m| Found::One(m.id.clone()))),
        Part::Text { text, after } => {
            let after = carrying(after).and_then(|m| m.time);
            let mut hits: Vec<&Message> = sent
                .into_iter()
                .filter(|m| m.attachments.is_empty() && m.text.as_deref() == Some(text))
                .filter(|m| !taken.contains(&m.id) && not_before(m.time, after))
                .collect();
            Ok(match hits.len() {
                0 => Found::Nothing,
                1 => Found::One(hits.remove(0).id.clone()),
                n => Found::Several(n),
            })
        }
    }
}

/// Every message of the conversation: its ids and times from the conversation, the rest from
/// the bulk read of those ids, 1000 at a time.
async fn messages(api: &Api, conversation_id: &str) -> Result<Vec<Message>> {
    let url = api
        .endpoints
        .api_segments(&["api", "v2", "conversations", "messages", conversation_id])
        .map_err(|why| Error::protocol(Stage::Send, why))?;
    let c: Conversation = api.read(Stage::Send, Method::GET, url, None).await?;
    let mut by_id: HashMap<String, Message> = HashMap::new();
    let mut order = Vec::new();
    for d in c.participants.into_iter().flat_map(|p| p.messages) {
        let Some(id) = d.message_id.filter(|id| !id.is_empty()) else {
            continue;
        };
        let m = by_id.entry(id.clone()).or_insert_with(|| {
            order.push(id.clone());
            Message {
                id,
                ..Message::default()
            }
        });
        m.time = m.time.or(parse_time(d.message_time.as_deref()));
        m.attachments
            .extend(d.media.into_iter().filter_map(|r| r.id));
    }
    let mut url = api
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
    url.set_query(Some("useNormalizedMessage=true"));
    for ids in order.chunks(BULK_MAX) {
        let body = serde_json::json!(ids);
        let listing: Listing = api
            .read(Stage::Send, Method::POST, url.clone(), Some(&body))
            .await?;
        for d in listing.entities {
            if let Some(m) = d.id.as_ref().and_then(|id| by_id.get_mut(id)) {
                merge(m, d);
            }
        }
    }
    Ok(order
        .into_iter()
        .filter_map(|id| by_id.remove(&id))
        .collect())
}

/// What a `MessageData` adds to a message: direction, status, text and attachments.
fn merge(m: &mut Message, d: Data) {
    m.outbound = d
        .direction
        .as_deref()
        .is_some_and(|x| x.eq_ignore_ascii_case("outbound"));
    m.failed = failed_status(d.status.as_deref());
    let (text, content) = match d.normalized_message {
        Some(n) => (n.text, n.content),
        None => (None, Vec::new()),
    };
    m.text = text.or(d.text_body).filter(|t| !t.is_empty());
    let normalized = content.into_iter().filter_map(|c| c.attachment?.id);
    let deprecated = d.media.into_iter().filter_map(|r| r.id);
    for a in normalized.chain(deprecated) {
        if !m.attachments.contains(&a) {
            m.attachments.push(a);
        }
    }
}

fn not_before(t: Option<OffsetDateTime>, after: Option<OffsetDateTime>) -> bool {
    match (t, after) {
        (Some(t), Some(a)) => t >= a,
        _ => true,
    }
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

    #[test]
    fn the_normalized_attachment_or_the_deprecated_media_names_the_media() {
        let d: Data = serde_json::from_value(serde_json::json!({
            "id": "m1", "direction": "outbound", "status": "sent",
            "normalizedMessage": {"content": [{"contentType": "Attachment", "attachment": {"id": "a"}}]},
            "media": [{"id": "b"}],
        }))
        .unwrap();
        let mut m = Message::default();
        merge(&mut m, d);
        assert!(m.outbound && !m.failed && m.carries("a") && m.carries("b"));
        assert!(failed_status(Some("failed")) && !failed_status(Some("sent")));
    }
}
