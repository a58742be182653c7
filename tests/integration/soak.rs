//! Soak: 200 uploads with faults injected at random on every endpoint (fixed seed). Every file is
//! either uploaded exactly once or reported failed; no duplicates, no missing records or events.
//! Ignored by default: `cargo test --test soak -- --ignored` (CI runs it).

use std::collections::{HashMap, HashSet};

use crate::common::*;
use gcupload::sandbox::Inject;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
#[ignore = "soak: about a minute; run with --ignored"]
fn two_hundred_uploads_under_random_faults() {
    const FILES: usize = 200;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let env = Env::new();
    {
        let mut f = env.sandbox.faults();
        // About one call in six fails, on every endpoint, with every retryable failure.
        for endpoint in ["token", "request-url", "put", "confirm", "webhook"] {
            for _ in 0..(FILES / 6) {
                let status = [429, 502, 503, 504][rng.below(4) as usize];
                let mut rule = Inject::new(endpoint, status, (status == 429).then_some(0));
                rule.after = rng.below(10) as u32;
                f.inject.push(rule);
            }
        }
        f.drop_puts = 20;
        f.lose_confirms = 20;
        f.expired_urls = 10;
        f.reject_tokens = 1;
    }
    let mut files = Vec::new();
    let mut by_hash = HashMap::new();
    for i in 0..FILES {
        let len = 1024 + rng.below(60 * 1024) as usize;
        let bytes = if i % 2 == 0 { pdf(len) } else { png(len) };
        let mut bytes = bytes;
        bytes.extend_from_slice(format!("file {i}").as_bytes());
        let name = format!("f{i:03}.{}", if i % 2 == 0 { "pdf" } else { "png" });
        by_hash.insert(sha256(&bytes), name.clone());
        files.push(env.file(&name, &bytes));
    }
    let started = std::time::Instant::now();
    let out = env
        .cmd()
        .timeout(std::time::Duration::from_secs(900))
        .args(&files)
        .output()
        .unwrap();
    eprintln!(
        "soak: {FILES} files in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let recs = records(&out.stdout);

    // One record per file.
    assert_eq!(recs.len(), FILES, "{}", stderr(&out));
    let names: HashSet<_> = recs
        .iter()
        .map(|r| r["fileName"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), FILES);

    // Each stored object is one file's exact bytes, and no file is stored twice.
    let objects = env.sandbox.objects();
    let mut stored: HashMap<&str, usize> = HashMap::new();
    for o in &objects {
        let name = by_hash
            .get(&o.sha256)
            .expect("every object is some file's exact bytes");
        *stored.entry(name).or_default() += 1;
    }
    assert!(stored.values().all(|&n| n == 1), "duplicates: {stored:?}");

    let completed: Vec<_> = recs
        .iter()
        .filter(|r| r["action"] == "FILE_UPLOAD_COMPLETED")
        .collect();
    for r in &completed {
        let id = r["fileId"].as_str().unwrap();
        let o = objects
            .iter()
            .find(|o| o.key.contains(id))
            .expect("a completed file is stored");
        assert_eq!(by_hash[&o.sha256], r["fileName"].as_str().unwrap());
    }
    let failed = FILES - completed.len();
    eprintln!(
        "soak: {} completed, {failed} failed, {} objects",
        completed.len(),
        objects.len()
    );
    assert!(
        completed.len() >= FILES * 9 / 10,
        "most files make it through their retries"
    );

    // Events: those not delivered during the run are in the outbox; a flush delivers them.
    env.sandbox.faults().inject.clear();
    let flush = env
        .bare_cmd()
        .env("WEBHOOK_SYNC_URL", env.sandbox.webhook_url().as_str())
        .args(["webhook", "flush"])
        .output()
        .unwrap();
    assert_eq!(flush.status.code(), Some(0), "{}", stderr(&flush));
    let hooks = env.sandbox.webhooks();
    let keys: Vec<_> = hooks
        .iter()
        .map(|h| h["idempotencyKey"].as_str().unwrap().to_string())
        .collect();
    let unique: HashSet<_> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len(), "no event delivered twice");
    let expected: HashSet<_> = completed
        .iter()
        .map(|r| r["eventId"].as_str().unwrap().to_string())
        .collect();
    let got: HashSet<_> = keys.into_iter().collect();
    assert_eq!(got, expected, "exactly the completed files' events");
}
