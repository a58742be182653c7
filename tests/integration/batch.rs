//! Batches: directories, globs, `--from`, `--jobs`, `--shard`, records streamed as files finish.

use std::collections::HashSet;
use std::io::{BufRead, Write};

use crate::common::*;
use gcupload::ExitStatus;

fn tree(env: &Env) -> Vec<std::path::PathBuf> {
    let root = env.dir.path().join("in");
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    let mut files = Vec::new();
    for (i, rel) in [
        "a.pdf",
        "b.png",
        "sub/c.pdf",
        "sub/deeper/d.png",
        "sub/deeper/e.pdf",
    ]
    .iter()
    .enumerate()
    {
        let p = root.join(rel);
        let bytes = if rel.ends_with(".pdf") {
            pdf(3000 + i)
        } else {
            png(3000 + i)
        };
        std::fs::write(&p, bytes).unwrap();
        files.push(p);
    }
    files
}

#[test]
fn directories_globs_and_lists_expand_to_one_record_per_file() {
    let env = Env::new();
    let files = tree(&env);
    let out = env
        .cmd()
        .args(["--recursive", "in"])
        .finish(ExitStatus::Success);
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), 5);
    assert_eq!(env.sandbox.objects().len(), 5);
    let hashes: HashSet<String> = env
        .sandbox
        .objects()
        .into_iter()
        .map(|o| o.sha256)
        .collect();
    for f in &files {
        assert!(hashes.contains(&sha256_file(f)), "{f:?} stored byte-exact");
    }
    assert!(
        stderr(&out).contains("5 files, 5 uploaded, 0 failed"),
        "{}",
        stderr(&out)
    );

    // A directory without --recursive gets one record that says to pass --recursive.
    let out = env.cmd().arg("in").finish(ExitStatus::Validation);
    let r = &records(&out.stdout)[0];
    assert_eq!(r["error"]["rule"], "directory");
    assert!(r["error"]["hint"].as_str().unwrap().contains("--recursive"));

    // A quoted glob is expanded by gcupload; one that matches nothing is reported as not found.
    let out = env
        .cmd()
        .args(["--force", "in/sub/*/*.png", "in/nothing-*.pdf"])
        .output()
        .unwrap();
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), 2);
    assert_eq!(by_name(&recs, "d.png")["action"], "FILE_UPLOAD_COMPLETED");
    assert_eq!(
        by_name(&recs, "nothing-*.pdf")["error"]["rule"],
        "not-found"
    );

    // --from - reads paths from stdin, as from `find`.
    let list = format!("{}\n\n{}\n", files[0].display(), files[2].display());
    let out = env
        .cmd()
        .args(["--from", "-"])
        .write_stdin(list)
        .finish(ExitStatus::Success);
    assert_eq!(records(&out.stdout).len(), 2);
}

#[test]
fn many_files_with_many_jobs_are_each_stored_once() {
    let env = Env::new();
    let files: Vec<_> = (0..40)
        .map(|i| env.file(&format!("f{i:02}.pdf"), &pdf(20_000 + i)))
        .collect();
    let out = env
        .cmd()
        .args(["--jobs", "8"])
        .args(&files)
        .finish(ExitStatus::Success);
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), 40);
    let objects = env.sandbox.objects();
    assert_eq!(objects.len(), 40);
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        let r = by_name(&recs, name);
        let id = r["fileId"].as_str().unwrap();
        let o = objects.iter().find(|o| o.key.contains(id)).unwrap();
        assert_eq!(o.sha256, sha256_file(f));
    }
    // One token for the whole run, whatever the concurrency.
    assert_eq!(
        env.sandbox
            .requests()
            .iter()
            .filter(|r| r.path == "/oauth/token")
            .count(),
        1
    );
    assert_eq!(env.sandbox.webhooks().len(), 40);
}

#[test]
fn shards_split_the_inputs_without_overlap() {
    let env = Env::new();
    let files: Vec<_> = (0..30)
        .map(|i| env.file(&format!("s{i}.pdf"), &pdf(500 + i)))
        .collect();
    let mut seen = HashSet::new();
    let mut total = 0;
    for k in 1..=3 {
        let out = env
            .cmd()
            .args(["--shard", &format!("{k}/3")])
            .args(&files)
            .finish(ExitStatus::Success);
        let recs = records(&out.stdout);
        assert!(
            !recs.is_empty() && recs.len() < 30,
            "shard {k} has a share: {}",
            recs.len()
        );
        total += recs.len();
        for r in recs {
            assert!(
                seen.insert(r["fileName"].as_str().unwrap().to_string()),
                "no file in two shards"
            );
        }
    }
    assert_eq!(total, 30);
    assert_eq!(env.sandbox.objects().len(), 30);
    env.cmd()
        .args(["--shard", "4/3"])
        .args(&files)
        .finish(ExitStatus::Usage);
}

#[test]
fn records_stream_out_as_files_finish() {
    let env = Env::new();
    env.sandbox.faults().put_delay_ms = 1200;
    let files: Vec<_> = (0..3)
        .map(|i| env.file(&format!("f{i}.pdf"), &pdf(100 + i)))
        .collect();
    let mut args: Vec<&std::ffi::OsStr> = vec!["--jobs".as_ref(), "1".as_ref()];
    args.extend(files.iter().map(|f| f.as_os_str()));
    let mut child = env.spawn(&args);
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    // The first record is out while the other files are still uploading.
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run was still going"
    );
    check_schema(&serde_json::from_str(&first).unwrap());
    let rest: Vec<_> = lines.map(|l| l.unwrap()).collect();
    assert_eq!(rest.len(), 2);
    assert_eq!(
        child.wait().unwrap().code(),
        Some(ExitStatus::Success.code())
    );
    let _ = std::io::stderr().flush();
}

#[test]
fn every_input_gets_its_record_even_a_bad_pattern() {
    let env = Env::new();
    let good = env.file("good.pdf", &pdf(300));
    // An unbalanced bracket is no file and no valid glob; the valid files are still uploaded.
    let out = env
        .cmd()
        .arg(&good)
        .arg("C/x[.pdf")
        .arg(env.dir.path())
        .output()
        .unwrap();
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), 3, "{}", stderr(&out));
    assert_eq!(
        by_name(&recs, "good.pdf")["action"],
        "FILE_UPLOAD_COMPLETED"
    );
    let bad = recs.iter().find(|r| r["path"] == "C/x[.pdf").unwrap();
    assert_eq!(bad["error"]["kind"], "config");
    assert!(bad["error"]["message"].as_str().unwrap().contains("glob"));
    let dir = recs
        .iter()
        .find(|r| r["error"]["rule"] == "directory")
        .expect("the directory's own record");
    assert!(
        dir["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("--recursive")
    );
    // The earliest failure in input order decides the exit code: the pattern's.
    assert_eq!(out.status.code(), Some(ExitStatus::Usage.code()));
    assert_eq!(env.sandbox.objects().len(), 1);
}
