//! Peers that hang (issue 21): a webhook receiver that accepts connections and never answers
//! must not hold the run (the outbox flush, then every file's delivery) for each event's full
//! timeouts, and an interrupt is honoured while it hangs.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::{Env, output_within, records, signal, stderr};

/// A receiver that accepts every connection and never says a word; counts the connections.
fn hung_receiver() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        let mut open = Vec::new(); // kept open, never answered
        for s in listener.incoming() {
            open.push(s);
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    (url, accepted)
}

/// The binary in the background, uploading `file` with `url` as its webhook.
fn upload_with_webhook(env: &Env, url: &str, file: &std::path::Path) -> std::process::Child {
    env.std_cmd()
        .env("WEBHOOK_SYNC_URL", url)
        .arg(file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// 8 events queued, the receiver hangs: the flush at the start gives up after the receiver
/// failed to answer once (not 8 × its timeout: 40 s), the file's own event goes straight to the
/// outbox, and the upload is done and reported.
#[test]
fn a_hung_receiver_is_tried_once_not_once_per_event() {
    let env = Env::new();
    let store = env.store();
    for i in 0..8 {
        let body = serde_json::json!({"event": "genesys.file.uploaded", "payload": {"n": i}});
        store
            .queue(&format!("queued-{i}"), &body, "earlier failure", None)
            .unwrap();
    }
    drop(store);
    let (url, accepted) = hung_receiver();
    let f = env.file("a.txt", b"hello");
    let started = Instant::now();
    let child = upload_with_webhook(&env, &url, &f);
    // A bound on a hang (the old flush alone took 40 s), not a speed measurement.
    let out = output_within(child, Duration::from_secs(40));
    let took = started.elapsed();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let recs = records(&out.stdout);
    assert_eq!(recs[0]["status"], "completed", "{err}");
    let hook = &recs[0]["webhook"];
    assert_eq!(hook["delivered"], false);
    assert_eq!(hook["queued"], true);
    assert_eq!(hook["attempts"], 0, "{hook}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one try, then the receiver is left alone"
    );
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert_eq!(
        env.queued().len(),
        9,
        "nothing lost: 8 old events and the new one"
    );
}

/// A file's delivery hangs on the receiver; SIGTERM: the run stops waiting for it (no further
/// attempts), keeps the event in the outbox and exits with its record.
#[test]
fn sigterm_is_honoured_while_a_delivery_hangs() {
    let env = Env::new();
    let (url, accepted) = hung_receiver();
    let f = env.file("a.txt", b"hello");
    let child = upload_with_webhook(&env, &url, &f);
    let deadline = Instant::now() + Duration::from_secs(20);
    while accepted.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the delivery never began");
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&child, libc::SIGTERM);
    // The old run went on retrying for about 15 s more.
    let out = output_within(child, Duration::from_secs(6));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    let recs = records(&out.stdout);
    assert_eq!(recs[0]["status"], "completed", "{err}");
    assert_eq!(recs[0]["webhook"]["queued"], true);
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "no attempt after the signal"
    );
    assert_eq!(env.queued().len(), 1);
}
