//! The decisions both stores share: what a claim does with the newest row of a key, and what
//! each journal write sets. The stores run them in their own SQL, inside their own transactions.

use serde_json::Value;

use super::holder;
use super::keys::{Claim, Entry, Lease, Step};

/// A row as read: the entry and its lease, if one is held.
pub(super) type Leased = (Entry, Option<Lease>);

/// Whether the process holding a lease may still be working on it (`me`: this process as a
/// holder, see [`holder`]; `now`: the store's clock, in ms).
pub(super) fn alive(lease: &Lease, me: &str, now: i64) -> bool {
    lease.until_ms > now && holder::may_be_alive(lease.pid, &lease.host, me)
}

/// Confirmed to the target and nothing left to do.
pub(super) fn done(e: &Entry) -> bool {
    e.step == Step::Completed && e.webhook.is_some()
}

/// What a claim does, given the newest row of its key.
pub(super) enum Action {
    /// Done already: skip (and note the file's new stamp on the row).
    Done(Entry),
    /// Held by a live run: skip.
    Held(Lease),
    /// Start a new row (after closing `supersede`, a row `--force` leaves behind).
    Insert { supersede: Option<i64> },
    /// Take the row's lease over and go on from its step.
    TakeOver(Entry),
}

/// The claim's decision (see [`Claim`]). With `force`, a completed upload is sent again.
pub(super) fn decide(latest: Option<Leased>, force: bool, me: &str, now: i64) -> Action {
    match latest {
        Some((e, _)) if done(&e) && !force => Action::Done(e),
        Some((_, Some(l))) if alive(&l, me, now) => Action::Held(l),
        Some((e, _)) if e.step == Step::Failed || done(&e) => Action::Insert { supersede: None },
        // `--force` over an upload left part-way: that row is closed, not resumed (a completed
        // one keeps its owed webhook event for the next flush).
        Some((e, _)) if force => Action::Insert {
            supersede: (e.step != Step::Completed).then_some(e.id),
        },
        Some((e, _)) => Action::TakeOver(e),
        None => Action::Insert { supersede: None },
    }
}

/// What a taken-over row is to the run: fresh when nothing was sent yet.
pub(super) fn resumed(e: Entry) -> Claim {
    if e.step == Step::Claimed {
        Claim::Fresh(e)
    } else {
        Claim::Resume(e)
    }
}

/// A new row's entry, as the claim returns it.
pub(super) fn fresh(id: i64, event_id: String) -> Entry {
    Entry {
        id,
        event_id: Some(event_id),
        ..Entry::unjournaled()
    }
}

/// The event id a new row is claimed with: the completed record's and its webhook event's,
/// fixed before anything is sent, so whichever run completes the upload reports the same event.
pub(super) fn new_event_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A completed upload whose webhook event no run handled, as read: the store's time (ms) too.
pub(super) struct Owed {
    pub entry: Entry,
    pub lease: Option<Lease>,
    pub record_mac: Option<String>,
    pub now: i64,
}

/// An owed event to queue, if its row is still owed and held as it was when read (another
/// process may be adopting it at the same time).
pub(super) struct Adopt {
    pub id: i64,
    pub lease: Option<Lease>,
    pub event_id: String,
    pub body: String,
    pub mac: Option<String>,
}

/// The owed events whose run is gone, each built by `envelope` from its record and the
/// record's tag (`me`: this process as a holder).
pub(super) fn adoptable(
    owed: Vec<Owed>,
    me: &str,
    envelope: impl Fn(&Value, Option<&str>) -> (Value, Option<String>),
) -> Vec<Adopt> {
    let mut out = Vec::new();
    for o in owed {
        let (Some(record), Some(event_id)) = (&o.entry.record, &o.entry.event_id) else {
            continue;
        };
        if o.lease.as_ref().is_some_and(|l| alive(l, me, o.now)) {
            continue; // its run is still delivering it
        }
        let (body, mac) = envelope(record, o.record_mac.as_deref());
        out.push(Adopt {
            id: o.entry.id,
            lease: o.lease,
            event_id: event_id.clone(),
            body: body.to_string(),
            mac,
        });
    }
    out
}

/// Why an adopted event waits in the outbox.
pub(super) const ADOPTED: &str = "the run that completed the upload stopped before its webhook";

/// A journal write to a row this process holds; the lease is renewed with it (or released).
#[derive(Debug)]
pub(super) enum Write {
    Advance {
        step: Step,
        file_id: Option<String>,
        confirm_url: Option<String>,
    },
    Passed(Step),
    Confirmed {
        confirmation: Value,
        event_id: String,
    },
    Completed {
        record: Value,
        event_id: String,
        mac: Option<String>,
        /// No webhook to deliver: the row is settled (`webhook = 'none'`) by the same write.
        settled: bool,
    },
    Settled(String),
    Failed {
        error: String,
        fin: bool,
    },
    Renew,
}

/// The lease columns cleared: the row is free for any run.
pub(super) const RELEASED: &str = "lease_pid = NULL, lease_host = NULL, lease_until = NULL";

/// How a store writes the parts of an `UPDATE` that differ between databases.
pub(super) struct Dialect {
    /// Parameter `n` (1-based).
    pub param: fn(usize) -> String,
    /// The current time, as the row's timestamps hold it.
    pub now: &'static str,
    /// The lease's new expiry.
    pub lease: String,
}

impl Dialect {
    /// The `WHERE` clause of a remembered upload (over `uploads u`), with parameters 1 to 4:
    /// route, target, file name and stamp. Completed, its webhook handled, and still the newest
    /// row of its content.
    pub(super) fn remembered(&self) -> String {
        let p = self.param;
        format!(
            "route = {} AND target = {} AND file_name = {} AND stamp = {} \
             AND step = 'completed' AND webhook IS NOT NULL \
             AND id = (SELECT max(id) FROM uploads k WHERE k.route = u.route \
             AND k.target = u.target AND k.file_name = u.file_name AND k.sha256 = u.sha256)",
            p(1),
            p(2),
            p(3),
            p(4)
        )
    }
}

/// The `SET` list of a completion (a macro, so that the settled one can extend it in `concat!`).
macro_rules! completed {
    () => {
        "step = 'completed', record = {1}, event_id = {2}, completed_at = {now}, record_mac = {3}, error = NULL"
    };
}

impl Write {
    /// The `UPDATE` of row `id` while this process holds it, and its values; the caller appends
    /// the row's id, then this process's pid and host, as the last three parameters.
    pub(super) fn update(self, d: &Dialect) -> (String, Vec<Option<String>>) {
        let (set, values) = self.set(d);
        let n = values.len();
        let sql = format!(
            "UPDATE uploads SET {set} WHERE id = {} AND lease_pid = {} AND lease_host = {}",
            (d.param)(n + 1),
            (d.param)(n + 2),
            (d.param)(n + 3)
        );
        (sql, values)
    }

    /// The `SET` list (lease renewed or released, `updated_at` set) and its values, numbered
    /// from 1; the caller appends its `WHERE` parameters after them.
    fn set(self, d: &Dialect) -> (String, Vec<Option<String>>) {
        let (template, values, release): (&str, Vec<Option<String>>, bool) = match self {
            Write::Advance {
                step,
                file_id,
                confirm_url,
            } => (
                "step = {1}, file_id = COALESCE({2}, file_id), confirm_url = COALESCE({3}, confirm_url)",
                vec![Some(step.as_str().into()), file_id, confirm_url],
                false,
            ),
            Write::Passed(step) => ("step = {1}", vec![Some(step.as_str().into())], false),
            Write::Confirmed {
                confirmation,
                event_id,
            } => (
                "step = 'confirmed', confirmation = {1}, event_id = COALESCE(event_id, {2}), error = NULL",
                vec![Some(confirmation.to_string()), Some(event_id)],
                false,
            ),
            Write::Completed {
                record,
                event_id,
                mac,
                settled,
            } => (
                if settled {
                    concat!(completed!(), ", webhook = 'none'")
                } else {
                    completed!()
                },
                vec![Some(record.to_string()), Some(event_id), mac],
                settled,
            ),
            Write::Settled(webhook) => ("webhook = {1}", vec![Some(webhook)], true),
            Write::Failed { error, fin: true } => {
                ("step = 'failed', error = {1}", vec![Some(error)], true)
            }
            Write::Failed { error, fin: false } => ("error = {1}", vec![Some(error)], true),
            Write::Renew => ("error = error", Vec::new(), false),
        };
        let mut set = template.replace("{now}", d.now);
        for n in 1..=values.len() {
            set = set.replace(&format!("{{{n}}}"), &(d.param)(n));
        }
        let lease = if release {
            RELEASED.to_string()
        } else {
            format!("lease_until = {}", d.lease)
        };
        (format!("{set}, {lease}, updated_at = {}", d.now), values)
    }
}
