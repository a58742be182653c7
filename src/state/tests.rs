//! The journal's behaviour through the store's interface (on the embedded store; the shared
//! one is exercised by the integration tests against a real server).

use rusqlite::params;
use serde_json::json;

use super::sqlite::now_ms;
use super::*;
fn key(name: &str) -> Key {
    Key {
        route: "external-contact".into(),
        target: "c1".into(),
        file_name: name.into(),
        sha256: "ab".repeat(32),
    }
}

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&Location::Dir(dir.path().join("state"))).unwrap();
    (dir, s)
}

async fn claim(s: &Store, name: &str, force: bool) -> Claim {
    let seen = Seen {
        path: format!("/in/{name}"),
        size: 10,
        stamp: Some("1:2:10:3.0:3.0".into()),
    };
    s.claim(key(name), seen, force).await.unwrap()
}

/// Pretends the row's lease belongs to another process on this host.
fn hand_over(s: &Store, id: i64, pid: u32, until_ms: i64) {
    // Without the `postgres` feature SQLite is the only backend and the pattern cannot fail.
    #[allow(irrefutable_let_patterns)]
    let Backend::Sqlite(s) = &s.0 else {
        panic!("an SQLite store")
    };
    let holder = holder::identity(holder::host_of(&s.inner.host), pid);
    s.with(|c| {
        c.execute(
            "UPDATE uploads SET lease_pid = ?1, lease_until = ?2, lease_host = ?3 WHERE id = ?4",
            params![pid, until_ms, holder, id],
        )
    })
    .unwrap();
}

#[tokio::test]
async fn a_file_goes_fresh_then_done_and_force_starts_anew() {
    let (_d, s) = store();
    let Claim::Fresh(e) = claim(&s, "a.pdf", false).await else {
        panic!("fresh")
    };
    s.advance(e.id, Step::UrlIssued, Some("f1".into()), None)
        .await
        .unwrap();
    s.completed(e.id, json!({"fileId": "f1"}), "ev1".into(), None, false)
        .await
        .unwrap();
    s.settled(e.id, "delivered");
    let Claim::Done(done) = claim(&s, "a.pdf", false).await else {
        panic!("done")
    };
    assert_eq!(done.event_id.as_deref(), Some("ev1"));
    assert_eq!(done.file_id.as_deref(), Some("f1"));
    let Claim::Fresh(again) = claim(&s, "a.pdf", true).await else {
        panic!("forced")
    };
    assert_ne!(again.id, e.id, "a forced upload is a new row");
}

#[tokio::test]
async fn a_live_claim_is_held_a_dead_or_expired_one_is_taken_over() {
    let (_d, s) = store();
    let Claim::Fresh(e) = claim(&s, "a.pdf", false).await else {
        panic!("fresh")
    };
    s.advance(e.id, Step::PutDone, Some("f1".into()), None)
        .await
        .unwrap();
    // Our own live claim (the same file twice in one run) holds.
    assert!(matches!(claim(&s, "a.pdf", false).await, Claim::Held(_)));
    // A live process of this host (pid 1 always exists) holds it too.
    hand_over(&s, e.id, 1, now_ms() + LEASE_MS);
    assert!(matches!(claim(&s, "a.pdf", false).await, Claim::Held(l) if l.pid == 1));
    // The same, but expired: taken over and resumed from its step.
    hand_over(&s, e.id, 1, now_ms() - 1);
    let Claim::Resume(r) = claim(&s, "a.pdf", false).await else {
        panic!("resume")
    };
    assert_eq!((r.id, r.step), (e.id, Step::PutDone));
    // A process that is gone, lease not expired: taken over at once.
    hand_over(&s, r.id, u32::MAX - 7, now_ms() + LEASE_MS);
    assert!(matches!(claim(&s, "a.pdf", false).await, Claim::Resume(_)));
}

async fn remembered(s: &Store, name: &str, stamp: &str) -> Option<Remembered> {
    s.written().await.unwrap();
    s.remembered("external-contact", "c1", name, stamp).unwrap()
}

#[tokio::test]
async fn a_file_is_remembered_by_its_stamp_only_while_its_upload_is_the_newest() {
    let (_d, s) = store();
    let Claim::Fresh(e) = claim(&s, "a.pdf", false).await else {
        panic!("fresh")
    };
    assert!(
        remembered(&s, "a.pdf", "1:2:10:3.0:3.0").await.is_none(),
        "not completed"
    );
    s.completed(e.id, json!({"fileId": "f1"}), "ev1".into(), None, false)
        .await
        .unwrap();
    assert!(
        remembered(&s, "a.pdf", "1:2:10:3.0:3.0").await.is_none(),
        "webhook pending"
    );
    s.settled(e.id, "delivered");
    let r = remembered(&s, "a.pdf", "1:2:10:3.0:3.0")
        .await
        .expect("known");
    assert_eq!(
        (r.entry.id, r.size, r.file_name.as_str()),
        (e.id, 10, "a.pdf")
    );
    assert_eq!(r.sha256, key("a.pdf").sha256);
    assert!(
        remembered(&s, "a.pdf", "1:2:10:3.0:4.0").await.is_none(),
        "other stamp"
    );
    assert!(
        remembered(&s, "b.pdf", "1:2:10:3.0:3.0").await.is_none(),
        "other name"
    );
    // A forced upload of the same content, left part-way, is newer: the file is read.
    let Claim::Fresh(_) = claim(&s, "a.pdf", true).await else {
        panic!("forced")
    };
    assert!(
        remembered(&s, "a.pdf", "1:2:10:3.0:3.0").await.is_none(),
        "superseded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_are_committed_together_and_a_failed_one_spoils_no_other() {
    let (_d, s) = store();
    let Claim::Fresh(lost) = claim(&s, "lost.pdf", false).await else {
        panic!("fresh")
    };
    hand_over(&s, lost.id, 1, now_ms() + LEASE_MS);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let s1 = s.clone();
        tasks.spawn(async move {
            let s = s1;
            let Claim::Fresh(e) = claim(&s, &format!("{i}.pdf"), false).await else {
                panic!("fresh")
            };
            s.advance(e.id, Step::UrlIssued, Some(format!("f{i}")), None)
                .await
                .unwrap();
            s.advance(e.id, Step::PutDone, None, None).await.unwrap();
        });
        let s2 = s.clone();
        tasks.spawn(async move {
            let err = s2.advance(lost.id, Step::PutDone, None, None).await;
            assert!(matches!(err, Err(StateError::Lost { .. })), "{err:?}");
        });
    }
    while let Some(t) = tasks.join_next().await {
        t.unwrap();
    }
    let rows = s.history(&HistoryFilter::default()).unwrap();
    assert_eq!(rows.len(), 65);
    let done = rows.iter().filter(|r| r["step"] == "put-done").count();
    assert_eq!(done, 64, "every write landed");
    let lost_row = rows.iter().find(|r| r["fileName"] == "lost.pdf").unwrap();
    assert_eq!(
        lost_row["step"], "claimed",
        "the refused write changed nothing"
    );
}

#[tokio::test]
async fn a_row_taken_over_cannot_be_advanced_by_its_old_holder() {
    let (_d, s) = store();
    let Claim::Fresh(e) = claim(&s, "a.pdf", false).await else {
        panic!("fresh")
    };
    hand_over(&s, e.id, 1, now_ms() + LEASE_MS);
    let err = s.advance(e.id, Step::UrlIssued, None, None).await;
    assert!(matches!(err, Err(StateError::Lost { .. })), "{err:?}");
}

#[tokio::test]
async fn history_filters_and_pending_next_steps() {
    let (_d, s) = store();
    let Claim::Fresh(a) = claim(&s, "a.pdf", false).await else {
        panic!()
    };
    s.advance(a.id, Step::UrlIssued, Some("f".into()), None)
        .await
        .unwrap();
    s.failed(a.id, "boom".into(), false).await.unwrap();
    let Claim::Fresh(b) = claim(&s, "b.pdf", false).await else {
        panic!()
    };
    s.completed(b.id, json!({}), "ev".into(), None, false)
        .await
        .unwrap();
    s.settled(b.id, "none");
    s.written().await.unwrap();
    let all = s.history(&HistoryFilter::default()).unwrap();
    assert_eq!(all.len(), 2);
    let failed = s
        .history(&HistoryFilter {
            failed: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["fileName"], "a.pdf");
    assert_eq!(failed[0]["next"], Step::UrlIssued.next_action());
    let by_path = s
        .history(&HistoryFilter {
            path: Some("/in/b.pdf".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(by_path.len(), 1);
    let later = s
        .history(&HistoryFilter {
            since: Some(time::macros::datetime!(9999-01-01 0:00 UTC)),
            ..Default::default()
        })
        .unwrap();
    assert!(later.is_empty());
}

#[tokio::test]
async fn a_claim_fixes_the_event_id_and_a_completion_without_webhook_settles_its_row() {
    let (_d, s) = store();
    let Claim::Fresh(e) = claim(&s, "a.pdf", false).await else {
        panic!("fresh")
    };
    let ev = e
        .event_id
        .clone()
        .expect("the claim gives the row its event id");
    assert!(uuid::Uuid::parse_str(&ev).is_ok(), "{ev}");
    s.written().await.unwrap();
    assert_eq!(
        s.history(&HistoryFilter::default()).unwrap()[0]["eventId"],
        ev
    );
    s.completed(e.id, json!({"fileId": "f1"}), ev.clone(), None, true)
        .await
        .unwrap();
    let row = &s.history(&HistoryFilter::default()).unwrap()[0];
    assert_eq!(
        (&row["step"], &row["webhook"]),
        (&json!("completed"), &json!("none"))
    );
    assert!(row.get("lease").is_none(), "the lease is released: {row}");
    // Nothing is owed to a webhook, so nothing is adopted into the outbox.
    assert_eq!(s.adopt_owed_events(|r, _| (r.clone(), None)).unwrap(), 0);
    assert!(matches!(claim(&s, "a.pdf", false).await, Claim::Done(_)));
}
