//! Section 3b: the state store's section with the journal in PostgreSQL on loopback
//! (`--state-url`, a fresh database per measured run on the server GCUPLOAD_TEST_PG_URL names;
//! `.ci/postgres.sh start` starts one). Targets: overhead at most 10% at 20 ms API latency, a
//! re-run of the 500 sent files at least 10x faster than sending them.

use std::path::Path;

use serde_json::{Value, json};

use super::{Bench, Journal, state_store};

pub fn run(b: &Bench, small_dir: &Path, n_files: usize) -> Value {
    let Ok(base) = std::env::var("GCUPLOAD_TEST_PG_URL") else {
        println!(
            "3b. skipped: GCUPLOAD_TEST_PG_URL is not set (eval \"$(.ci/postgres.sh start)\")"
        );
        return json!({"skipped": "GCUPLOAD_TEST_PG_URL is not set"});
    };
    let fresh = |name: &str| {
        let db = format!("bench_{name}_{}", std::process::id());
        let mut admin = postgres::Client::connect(&base, postgres::NoTls).expect("the server");
        // One statement each: DROP and CREATE DATABASE refuse to run in a transaction.
        for sql in [
            format!("DROP DATABASE IF EXISTS {db}"),
            format!("CREATE DATABASE {db}"),
        ] {
            admin.batch_execute(&sql).unwrap();
        }
        let mut url = url::Url::parse(&base).unwrap();
        url.set_path(&db);
        vec!["--state-url".into(), url.to_string()]
    };
    let journal = Journal {
        name: "PostgreSQL",
        fresh: &fresh,
        overhead_target_pct: 10.0,
        speedup_target: 10.0,
    };
    // Five runs each, not three: on this shared 2-core machine one run in four or five strays
    // by 20% or more, on either side, and a median of three still follows it.
    state_store(b, small_dir, n_files, 20, 5, &journal)
}
