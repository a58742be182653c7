//! What a walk (`-r`) or glob takes (issue 18 item 2, issue 21 "walks and input lists"): hidden
//! names and names of files in progress are left alone, `--hidden`, `--include`, `--exclude` and
//! `.gcuploadignore` change that, named files are never filtered, every walk error is a record,
//! a link loop ends, and `--from` lists are bytes.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;
use gcupload::ExitStatus;
use gcupload::inputs::{Selection, admits, walk};

fn put(root: &Path, rel: &str, bytes: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// A drop folder with what other programs leave beside the files to send.
fn drop_folder(env: &Env) -> PathBuf {
    let root = env.dir.path().join("drop");
    let doc = pdf(500);
    for rel in [
        "a.pdf",
        "sub/b.pdf",
        ".hidden.pdf",
        ".git/c.pdf",
        "download.pdf.part",
        "x.pdf.crdownload",
        "y.tmp",
        ".report.pdf.swp",
        "~$memo.pdf",
        ".~lock.memo.odt#",
        "old/d.pdf",
        "draft-e.pdf",
        "sub/notes.png",
    ] {
        put(&root, rel, &doc);
    }
    put(&root, "sub/notes.png", &png(300));
    root
}

/// The paths of the records, relative to `root`, sorted.
fn taken(out: &std::process::Output, root: &Path) -> Vec<String> {
    let mut v: Vec<String> = records(&out.stdout)
        .iter()
        .map(|r| {
            let p = PathBuf::from(r["path"].as_str().unwrap());
            p.strip_prefix(root).unwrap_or(&p).display().to_string()
        })
        .collect();
    v.sort();
    v
}

#[test]
fn hidden_files_git_and_in_progress_names_are_left_alone_silently() {
    let env = Env::new();
    let root = drop_folder(&env);
    let out = env.cmd().arg("-r").arg(&root).finish(ExitStatus::Success);
    assert_eq!(
        taken(&out, &root),
        [
            "a.pdf",
            "draft-e.pdf",
            "old/d.pdf",
            "sub/b.pdf",
            "sub/notes.png"
        ]
    );
    assert_eq!(env.sandbox.objects().len(), 5);

    // --hidden takes hidden names; names in progress stay skipped.
    let out = env
        .cmd()
        .args(["-r", "--hidden", "--dry-run"])
        .arg(&root)
        .finish(ExitStatus::Success);
    let got = taken(&out, &root);
    assert!(got.contains(&".hidden.pdf".to_string()) && got.contains(&".git/c.pdf".to_string()));
    assert!(
        !got.iter().any(|p| p.contains("swp") || p.contains("lock")),
        "{got:?}"
    );

    // A file named explicitly is never filtered.
    let out = env
        .cmd()
        .arg(root.join(".hidden.pdf"))
        .finish(ExitStatus::Success);
    assert_eq!(records(&out.stdout)[0]["action"], "FILE_UPLOAD_COMPLETED");
}

#[test]
fn include_exclude_and_gcuploadignore_choose_the_files() {
    let env = Env::new();
    let root = drop_folder(&env);
    // Exclude wins over include; a trailing `/` is for directories; a name pattern matches at
    // any depth.
    let out = env
        .cmd()
        .args([
            "-r",
            "--dry-run",
            "--include",
            "*.pdf",
            "--include",
            "*.txt",
        ])
        .args([
            "--exclude",
            "draft-*",
            "--exclude",
            "old/",
            "--exclude",
            "a.pdf",
        ])
        .arg(&root)
        .finish(ExitStatus::Success);
    assert_eq!(taken(&out, &root), ["sub/b.pdf"]);

    // .gcuploadignore, at any level, in gitignore syntax (a `!` takes a file back).
    std::fs::write(root.join(".gcuploadignore"), "*.png\nold/\n").unwrap();
    put(&root, "sub/secret-1.pdf", &pdf(100));
    put(&root, "sub/secret-ok.pdf", &pdf(100));
    std::fs::write(
        root.join("sub/.gcuploadignore"),
        "secret-*\n!secret-ok.pdf\n",
    )
    .unwrap();
    let out = env
        .cmd()
        .args(["-r", "--dry-run"])
        .arg(&root)
        .finish(ExitStatus::Success);
    assert_eq!(
        taken(&out, &root),
        ["a.pdf", "draft-e.pdf", "sub/b.pdf", "sub/secret-ok.pdf"]
    );
    // A bad --include pattern is refused before anything is sent, with a quoting hint.
    let out = env
        .cmd()
        .args(["-r", "--include", "a[b"])
        .arg(&root)
        .finish(ExitStatus::Usage);
    assert!(stderr(&out).contains("quote"), "{}", stderr(&out));
}

#[test]
fn admits_agrees_with_the_walk_for_every_path() {
    let env = Env::new();
    let root = drop_folder(&env);
    std::fs::write(root.join(".gcuploadignore"), "old/\n").unwrap();
    std::fs::write(root.join("sub/.gcuploadignore"), "*.png\n").unwrap();
    let sel = Selection::new(false, vec![], vec!["draft-*".into()], true).unwrap();
    let walked: Vec<PathBuf> = walk(&root, &sel).map(|i| i.path).collect();
    assert_eq!(
        walked,
        [root.join("a.pdf"), root.join("sub/b.pdf")],
        "sorted, filtered"
    );
    for entry in std::fs::read_dir(&root)
        .unwrap()
        .chain(std::fs::read_dir(root.join("sub")).unwrap())
        .chain(std::fs::read_dir(root.join(".git")).unwrap())
    {
        let p = entry.unwrap().path();
        if p.is_file() {
            assert_eq!(
                admits(&sel, &root, &p),
                walked.contains(&p),
                "{}",
                p.display()
            );
        }
    }
}

#[test]
fn a_walk_error_is_a_record_naming_the_path() {
    let env = Env::new();
    let root = env.dir.path().join("deep");
    std::fs::create_dir_all(&root).unwrap();
    put(&root, "ok.pdf", &pdf(100));
    // Deeper than PATH_MAX (4096 bytes) from the walk's root: built directory by directory
    // relative to an open handle, it cannot be opened by its full path. Works as root, where
    // permissions would not stop a read.
    let part = "d".repeat(200);
    deep_file(&root, &part, 25, b"%PDF-1.7 lost");
    let out = env
        .cmd()
        .arg("-r")
        .arg(&root)
        .finish(ExitStatus::Validation);
    let recs = records(&out.stdout);
    assert_eq!(by_name(&recs, "ok.pdf")["action"], "FILE_UPLOAD_COMPLETED");
    let failed: Vec<_> = recs
        .iter()
        .filter(|r| r["action"] == "FILE_UPLOAD_FAILED")
        .collect();
    assert_eq!(failed.len(), 1, "{recs:?}");
    assert!(failed[0]["path"].as_str().unwrap().contains(&part));
    assert_eq!(failed[0]["error"]["rule"], "unreadable");
    assert!(
        failed[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("walk"),
        "{}",
        failed[0]
    );
}

#[test]
fn a_glob_over_a_symlink_loop_ends_and_links_are_reported_not_followed() {
    let env = Env::new();
    let root = env.dir.path().join("loop");
    put(&root, "real.pdf", &pdf(100));
    std::os::unix::fs::symlink(".", root.join("again")).unwrap();
    std::os::unix::fs::symlink("real.pdf", root.join("link.pdf")).unwrap();
    let out = env
        .cmd()
        .timeout(Duration::from_secs(20))
        .arg(format!("{}/**/*.pdf", root.display()))
        .finish(ExitStatus::Success);
    assert_eq!(taken(&out, &root), ["real.pdf"]);
    assert!(
        stderr(&out).contains("link.pdf: a symbolic link found in a walk is not followed"),
        "{}",
        stderr(&out)
    );
    let out = env.cmd().arg("-r").arg(&root).finish(ExitStatus::Success);
    assert_eq!(records(&out.stdout).len(), 1);
    // Counted in the summary too: a person reading only the last line sees what was passed over.
    assert!(
        stderr(&out).contains("2 symbolic links not followed"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_bad_glob_hint_says_how_to_quote_or_escape() {
    let env = Env::new();
    let out = env.cmd().arg("in/[x").finish(ExitStatus::Usage);
    let r = &records(&out.stdout)[0];
    let hint = r["error"]["hint"].as_str().unwrap();
    assert!(hint.contains("quote") && hint.contains("[[]"), "{hint}");
    assert!(!hint.contains("flag or variable"), "{hint}");
}

#[test]
fn from_lists_are_bytes_and_from0_takes_nul_separated_names() {
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    // A directory whose name is not UTF-8, holding a file with a good name.
    let odd = env.dir.path().join(OsStr::from_bytes(b"caf\xe9"));
    put(&odd, "menu.pdf", &pdf(400));
    put(env.dir.path(), "with space.pdf", &pdf(300));
    let mut list = odd.join("menu.pdf").as_os_str().as_bytes().to_vec();
    list.extend_from_slice(b"\nwith space.pdf\n");
    std::fs::write(env.dir.path().join("list.txt"), &list).unwrap();
    let out = env
        .cmd()
        .args(["--from", "list.txt"])
        .finish(ExitStatus::Success);
    assert_eq!(records(&out.stdout).len(), 2);
    assert_eq!(env.sandbox.objects().len(), 2);

    // NUL-separated (find -print0), read from stdin.
    put(env.dir.path(), "more.pdf", &pdf(350));
    let mut list = odd.join("menu.pdf").as_os_str().as_bytes().to_vec();
    list.extend_from_slice(b"\0more.pdf\0");
    let out = env
        .cmd()
        .args(["--from", "-", "--from0", "--dry-run"])
        .write_stdin(list)
        .finish(ExitStatus::Success);
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), 2);
    assert_eq!(by_name(&recs, "more.pdf")["action"], "FILE_UPLOAD_PLANNED");
}

/// `root/part/part/…/lost.pdf`, `levels` deep, made with `mkdirat`/`openat` (no full path).
fn deep_file(root: &Path, part: &str, levels: usize, bytes: &[u8]) {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let name = CString::new(part).unwrap();
    let root = CString::new(root.as_os_str().as_bytes()).unwrap();
    // SAFETY: plain system calls on descriptors this function opens and closes.
    unsafe {
        let mut fd = libc::open(root.as_ptr(), libc::O_DIRECTORY | libc::O_RDONLY);
        assert!(fd >= 0);
        for _ in 0..levels {
            assert_eq!(libc::mkdirat(fd, name.as_ptr(), 0o755), 0);
            let next = libc::openat(fd, name.as_ptr(), libc::O_DIRECTORY | libc::O_RDONLY);
            assert!(next >= 0);
            libc::close(fd);
            fd = next;
        }
        let file = CString::new("lost.pdf").unwrap();
        let f = libc::openat(fd, file.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o644);
        assert!(f >= 0);
        assert_eq!(
            libc::write(f, bytes.as_ptr().cast(), bytes.len()),
            bytes.len() as isize
        );
        libc::close(f);
        libc::close(fd);
    }
}
