//! Drop-folder housekeeping: `--move-to` keeps the tree below the walked folder, and
//! `--failed-to` moves a file that can never be sent out of the drop folder with its record,
//! while a failure that a later run may get past leaves the file where it is.

use std::path::{Path, PathBuf};

use crate::common::*;
use gcupload::ExitStatus;
use serde_json::Value;

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn moved_to(r: &Value) -> PathBuf {
    PathBuf::from(
        r["movedTo"]
            .as_str()
            .unwrap_or_else(|| panic!("no movedTo: {r}")),
    )
}

/// `in/a/x.pdf` and `in/b/x.pdf` become `sent/a/x.pdf` and `sent/b/x.pdf` (not `x.pdf` and
/// `x (1).pdf`), for a walk (`-r`) and a glob alike; a file named on the command line has no
/// walked folder and lands in `sent` itself.
#[test]
fn move_to_keeps_the_tree_below_the_walked_folder() {
    let env = Env::new();
    let root = env.dir.path();
    let files = [
        ("in/a/x.pdf", pdf(1001)),
        ("in/b/x.pdf", pdf(1002)),
        ("in/top.pdf", pdf(1003)),
        ("in/a/deep/er/y.pdf", pdf(1004)),
        ("globbed/c/z.pdf", pdf(1005)),
        ("named/n.pdf", pdf(1006)),
    ];
    for (p, b) in &files {
        write(&root.join(p), b);
    }
    let out = env
        .cmd()
        .current_dir(root)
        .args([
            "-r",
            "in",
            "globbed/*/z.pdf",
            "named/n.pdf",
            "--move-to",
            "sent",
        ])
        .finish(ExitStatus::Success);
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), files.len(), "{recs:#?}");
    let expected = [
        ("in/a/x.pdf", "sent/a/x.pdf"),
        ("in/b/x.pdf", "sent/b/x.pdf"),
        ("in/top.pdf", "sent/top.pdf"),
        ("in/a/deep/er/y.pdf", "sent/a/deep/er/y.pdf"),
        ("globbed/c/z.pdf", "sent/c/z.pdf"),
        ("named/n.pdf", "sent/n.pdf"),
    ];
    for ((src, dest), (_, bytes)) in expected.iter().zip(&files) {
        let r = recs
            .iter()
            .find(|r| r["path"] == *src)
            .unwrap_or_else(|| panic!("no record for {src}: {recs:#?}"));
        assert_eq!(moved_to(r), Path::new(dest), "{src}");
        assert_eq!(&std::fs::read(root.join(dest)).unwrap(), bytes, "{dest}");
        assert!(!root.join(src).exists(), "{src} was moved");
    }
    assert!(!root.join("sent/x (1).pdf").exists());
}

/// Refused by a local rule (magic bytes, an empty file, the EICAR signature): moved into the
/// `--failed-to` folder, tree kept, its record beside it; the next run finds the drop folder
/// clean and exits 0. A file that was sent is moved by `--move-to` as before.
#[test]
fn failed_to_sets_aside_what_validation_refuses_and_the_next_run_is_clean() {
    let env = Env::new();
    let root = env.dir.path();
    write(&root.join("in/good.pdf"), &pdf(2000));
    write(&root.join("in/bad.pdf"), &png(300)); // a PNG named .pdf
    write(&root.join("in/empty.pdf"), b"");
    write(&root.join("in/sub/evil.txt"), &eicar_text());
    let run = || {
        env.cmd()
            .current_dir(root)
            .args(["-r", "in", "--move-to", "sent", "--failed-to", "failed"])
            .output()
            .unwrap()
    };
    let out = run();
    expect_status(&out, ExitStatus::Validation);
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), 4, "{recs:#?}");
    assert_eq!(
        moved_to(by_name(&recs, "good.pdf")),
        Path::new("sent/good.pdf")
    );
    for (name, dest, rule) in [
        ("bad.pdf", "failed/bad.pdf", "magic-mismatch"),
        ("empty.pdf", "failed/empty.pdf", "empty"),
        ("evil.txt", "failed/sub/evil.txt", "content-safety"),
    ] {
        let r = by_name(&recs, name);
        assert_eq!(r["action"], "FILE_UPLOAD_FAILED", "{r}");
        assert_eq!(r["error"]["rule"], rule, "{r}");
        assert_eq!(moved_to(r), Path::new(dest), "{r}");
        assert!(root.join(dest).exists(), "{dest}");
        // The record beside it is the one printed.
        let beside = std::fs::read(root.join(format!("{dest}.gcupload.json"))).unwrap();
        let beside: Value = serde_json::from_slice(&beside).unwrap();
        assert_eq!(&beside, r);
    }
    assert_eq!(
        std::fs::read(root.join("failed/bad.pdf")).unwrap(),
        png(300)
    );
    assert_eq!(
        env.sandbox.objects().len(),
        1,
        "only the good file was stored"
    );

    let again = run();
    expect_status(&again, ExitStatus::Success);
    assert!(records(&again.stdout).is_empty(), "nothing left to try");
}

/// The platform's refusals of the content count too: the virus scan, and the guest
/// deployment's rules.
#[test]
fn failed_to_sets_aside_what_the_platform_refuses_for_good() {
    let env = Env::new();
    let root = env.dir.path();
    let mut infected = b"numbers\n".to_vec();
    infected.extend_from_slice(gcupload::validate::EICAR);
    write(&root.join("in/eicar.txt"), &infected);
    let out = env
        .cmd()
        .current_dir(root)
        .args(["-r", "in", "--no-local-scan", "--failed-to", "failed"])
        .finish(ExitStatus::Infected);
    let r = &records(&out.stdout)[0];
    assert_eq!(r["error"]["kind"], "infected");
    assert_eq!(moved_to(r), Path::new("failed/eicar.txt"));
    assert_eq!(
        std::fs::read(root.join("failed/eicar.txt")).unwrap(),
        infected
    );

    env.sandbox.faults().guest_blocked_extensions = vec![".txt".into()];
    write(&root.join("g/notes.txt"), b"hello");
    let out = env
        .guest_cmd()
        .current_dir(root)
        .args(["-r", "g", "--failed-to", "failed"])
        .finish(ExitStatus::Validation);
    let r = &records(&out.stdout)[0];
    assert_eq!(moved_to(r), Path::new("failed/notes.txt"), "{r}");
    assert!(!root.join("g/notes.txt").exists());
}

/// A failure another run may get past (here: the platform refuses the credentials) leaves the
/// file where it is; so does a dry run.
#[test]
fn failed_to_leaves_files_that_failed_for_another_reason() {
    let env = Env::new();
    let root = env.dir.path();
    write(&root.join("in/a.pdf"), &pdf(500));
    write(&root.join("in/bad.pdf"), &png(100));
    env.cmd()
        .current_dir(root)
        .args([
            "-r",
            "in",
            "--dry-run",
            "--offline",
            "--failed-to",
            "failed",
        ])
        .finish(ExitStatus::Validation);
    assert!(root.join("in/bad.pdf").exists(), "a dry run moves nothing");
    std::fs::remove_file(root.join("in/bad.pdf")).unwrap();

    env.sandbox.faults().reject_tokens = 100;
    let out = env
        .cmd()
        .current_dir(root)
        .args(["-r", "in", "--failed-to", "failed"])
        .finish(ExitStatus::Auth);
    let r = &records(&out.stdout)[0];
    assert!(r.get("movedTo").is_none(), "{r}");
    assert!(root.join("in/a.pdf").exists());
    assert!(!root.join("failed").exists());
}

/// A `--failed-to` folder inside what the run walks would be walked again: refused before
/// anything is sent.
#[test]
fn a_failed_to_folder_the_inputs_reach_is_refused() {
    let env = Env::new();
    let root = env.dir.path();
    write(&root.join("in/a.pdf"), &pdf(500));
    let out = env
        .cmd()
        .current_dir(root)
        .args(["-r", "in", "--failed-to", "in/failed"])
        .output()
        .unwrap();
    let err = expect_status(&out, ExitStatus::Usage);
    assert!(
        err.contains("--failed-to in/failed is inside the input in"),
        "{err}"
    );
    assert!(env.sandbox.objects().is_empty());
}
