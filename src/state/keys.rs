//! What the journal is about, whichever database keeps it: the key of an upload, its steps, a
//! row as a run needs it, and the outcome of a claim.

use serde_json::Value;

use super::holder;

/// A lease lives this long unless renewed; a holder renews it at a third of that.
pub const LEASE_MS: i64 = 60_000;

/// What identifies an upload: the same content under the same name to the same target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub route: String,
    /// What the file lands in: the contact, the conversation and communication, the session.
    pub target: String,
    pub file_name: String,
    pub sha256: String,
}

/// How far an upload got; each is written before the step it names is attempted or after the
/// step it names is known done, as its doc says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// Validated and claimed; nothing sent.
    Claimed,
    /// An upload URL was issued for `file_id`; the PUT may or may not have landed.
    UrlIssued,
    /// The PUT was answered 2xx.
    PutDone,
    /// The confirmation was sent; its answer may be lost (confirmations are idempotent).
    ConfirmSent,
    /// The platform confirmed the upload; the message (if the route sends one) is not sent.
    Confirmed,
    /// The message send was started: it may have gone out.
    SendStarted,
    /// Done; the record is stored. The webhook may still be pending.
    Completed,
    /// Ended in a failure a retry of the same row cannot fix.
    Failed,
}

const STEPS: &[(Step, &str)] = &[
    (Step::Claimed, "claimed"),
    (Step::UrlIssued, "url-issued"),
    (Step::PutDone, "put-done"),
    (Step::ConfirmSent, "confirm-sent"),
    (Step::Confirmed, "confirmed"),
    (Step::SendStarted, "send-started"),
    (Step::Completed, "completed"),
    (Step::Failed, "failed"),
];

impl Step {
    pub fn as_str(self) -> &'static str {
        STEPS
            .iter()
            .find(|(s, _)| *s == self)
            .map_or("?", |(_, n)| n)
    }

    pub(super) fn parse(s: &str) -> Step {
        // An unknown step (a newer gcupload wrote it) is resumed from the safe start.
        STEPS
            .iter()
            .find(|(_, n)| *n == s)
            .map_or(Step::Claimed, |(st, _)| *st)
    }

    /// What a resume from this step does, for `history --pending`.
    pub fn next_action(self) -> &'static str {
        match self {
            Step::Claimed => "upload from the start (nothing was sent)",
            Step::UrlIssued => {
                "ask the platform whether the upload landed: confirm it if so, else PUT again on a fresh URL"
            }
            Step::PutDone | Step::ConfirmSent => "confirm the landed upload",
            Step::Confirmed => "send the message",
            Step::SendStarted => "check whether the message went out; never send it twice",
            Step::Completed => "deliver the webhook event",
            Step::Failed => "upload again",
        }
    }
}

/// A journal row as a run needs it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: i64,
    pub step: Step,
    pub file_id: Option<String>,
    pub confirm_url: Option<String>,
    /// The platform's confirmation (fields for the record), from step `Confirmed` on.
    pub confirmation: Option<Value>,
    /// The completed record.
    pub record: Option<Value>,
    pub event_id: Option<String>,
    /// `delivered`, `queued`, `none` (no webhook configured); `None` while pending.
    pub webhook: Option<String>,
    pub completed_at: Option<String>,
}

impl Entry {
    /// The row of a run without a state store: nothing done, nothing kept.
    pub fn unjournaled() -> Entry {
        Entry {
            id: 0,
            step: Step::Claimed,
            file_id: None,
            confirm_url: None,
            confirmation: None,
            record: None,
            event_id: None,
            webhook: None,
            completed_at: None,
        }
    }
}

/// The file as this run found it: where it is (absolute), its size and its stamp (see
/// `validate::stamp`).
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub size: u64,
    pub stamp: Option<String>,
}

/// A completed upload found by the file's stamp, with what its record needs.
#[derive(Debug, Clone)]
pub struct Remembered {
    pub entry: Entry,
    pub file_name: String,
    pub sha256: String,
    pub size: u64,
}

/// Who holds a file, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub pid: u32,
    pub host: String,
    pub until_ms: i64,
}

impl std::fmt::Display for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} on {}", self.pid, holder::host_of(&self.host))
    }
}

/// The outcome of claiming a file.
#[derive(Debug)]
pub enum Claim {
    /// Nothing was done before: upload from the start.
    Fresh(Entry),
    /// An earlier run stopped part-way: finish from `entry.step`.
    Resume(Entry),
    /// Already confirmed to this target, webhook handled: skip.
    Done(Entry),
    /// Another live run holds it now: skip.
    Held(Lease),
}
