//! The moves, on real files in a temporary directory.
use super::*;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io;

fn write(path: &Path, bytes: &[u8]) -> Identity {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
    identity(path)
}

fn identity(path: &Path) -> Identity {
    Identity::of(&fs::symlink_metadata(path).unwrap())
}

fn move_to(dir: &Path) -> After {
    After::MoveTo(dir.to_path_buf())
}

/// The names in `dir`, sorted: a leftover temporary file would show here.
fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

fn change_of(result: Result<Outcome, MoveError>) -> Change {
    match result {
        Err(MoveError::Replaced { change, .. }) => change,
        other => panic!("expected Replaced, got {other:?}"),
    }
}

#[test]
fn a_move_within_one_filesystem_is_a_rename() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("in/sub/report.pdf");
    let id = write(&src, b"%PDF-1.7 body");
    let out = tmp.path().join("out");
    let done = apply(&move_to(&out), &src, &id).unwrap();
    let to = out.join("report.pdf");
    assert_eq!(done, Outcome::Moved { to: to.clone() });
    assert!(!src.exists());
    assert_eq!(fs::read(&to).unwrap(), b"%PDF-1.7 body");
    // Same inode, same mtime: the file itself moved, not a copy of it (a rename sets ctime).
    assert_eq!(identity(&to).without_ctime(), id.without_ctime());
}

#[test]
fn the_cross_device_path_copies_and_then_removes_the_source() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("in/report.pdf");
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    write(&src, &bytes);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&src, fs::Permissions::from_mode(0o640)).unwrap();
    }
    let id = identity(&src);
    let modified = fs::metadata(&src).unwrap().modified().unwrap();
    let out = tmp.path().join("out");
    let done = apply_with(&move_to(&out), &src, &id, true).unwrap();
    let to = out.join("report.pdf");
    assert_eq!(done, Outcome::Moved { to: to.clone() });
    assert!(!src.exists());
    assert_eq!(fs::read(&to).unwrap(), bytes);
    assert_eq!(names(&out), ["report.pdf"], "no temporary file is left");
    #[cfg(unix)]
    assert_ne!(identity(&to), id, "a copy is a new file");
    assert_eq!(fs::metadata(&to).unwrap().modified().unwrap(), modified);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&to).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
    }
}

#[test]
fn a_taken_name_gets_the_next_number_and_every_file_survives() {
    for force_copy in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        write(&out.join("report.pdf"), b"already there");
        for (n, body) in [(1, &b"second"[..]), (2, &b"third"[..])] {
            let src = tmp.path().join("in/report.pdf");
            let id = write(&src, body);
            let done = apply_with(&move_to(&out), &src, &id, force_copy).unwrap();
            let to = out.join(format!("report ({n}).pdf"));
            assert_eq!(
                done,
                Outcome::Moved { to: to.clone() },
                "copy: {force_copy}"
            );
            assert_eq!(fs::read(&to).unwrap(), body);
            assert!(!src.exists());
        }
        assert_eq!(fs::read(out.join("report.pdf")).unwrap(), b"already there");
        assert_eq!(
            names(&out),
            ["report (1).pdf", "report (2).pdf", "report.pdf"]
        );
    }
}

#[test]
fn a_name_without_an_extension_collides_as_name_1() {
    for force_copy in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        write(&out.join("README"), b"old");
        let src = tmp.path().join("in/README");
        let id = write(&src, b"new");
        let done = apply_with(&move_to(&out), &src, &id, force_copy).unwrap();
        let to = out.join("README (1)");
        assert_eq!(done, Outcome::Moved { to: to.clone() });
        assert_eq!(fs::read(&to).unwrap(), b"new");
        assert_eq!(fs::read(out.join("README")).unwrap(), b"old");
    }
}

#[test]
fn numbered_names_keep_the_last_extension() {
    let cases = [
        ("report.pdf", "report (3).pdf"),
        ("archive.tar.gz", "archive.tar (3).gz"),
        ("README", "README (3)"),
        (".env", ".env (3)"),
        ("trailing.", "trailing (3)."),
    ];
    for (name, want) in cases {
        assert_eq!(place::numbered(OsStr::new(name), 3), OsStr::new(want));
    }
    assert_eq!(place::numbered(OsStr::new("report.pdf"), 0), "report.pdf");
}

#[cfg(unix)]
#[test]
fn a_dangling_symlink_in_the_destination_is_not_replaced() {
    for force_copy in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        fs::create_dir_all(&out).unwrap();
        std::os::unix::fs::symlink("nowhere", out.join("report.pdf")).unwrap();
        let src = tmp.path().join("in/report.pdf");
        let id = write(&src, b"new");
        let done = apply_with(&move_to(&out), &src, &id, force_copy).unwrap();
        assert_eq!(
            done,
            Outcome::Moved {
                to: out.join("report (1).pdf")
            }
        );
        assert!(out.join("report.pdf").is_symlink());
    }
}

#[test]
fn a_replaced_source_is_left_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    for (after, force_copy) in [
        (move_to(&out), false),
        (move_to(&out), true),
        (After::Remove, false),
    ] {
        let src = tmp.path().join("in/report.pdf");
        let id = write(&src, b"uploaded");
        // Another program writes a new file and renames it over the old one.
        let other = tmp.path().join("in/.report.pdf.new");
        write(&other, b"a newer version");
        fs::rename(&other, &src).unwrap();
        let err = apply_with(&after, &src, &id, force_copy);
        let msg = err.as_ref().unwrap_err().to_string();
        assert!(msg.contains("report.pdf") && msg.contains("nothing was moved"));
        // Without inode numbers a replacement reads as a modification.
        let change = change_of(err);
        assert!(cfg!(not(unix)) || change == Change::OtherFile, "{change:?}");
        assert_eq!(fs::read(&src).unwrap(), b"a newer version");
        assert!(!out.exists(), "the destination is not even created");
    }
}

#[test]
fn a_source_modified_after_the_upload_is_left_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("in/report.pdf");
    let id = write(&src, b"uploaded");
    fs::OpenOptions::new()
        .append(true)
        .open(&src)
        .and_then(|mut f| io::Write::write_all(&mut f, b" and more"))
        .unwrap();
    let out = tmp.path().join("out");
    for after in [move_to(&out), After::Remove] {
        let change = change_of(apply(&after, &src, &id));
        assert_eq!(change, Change::Modified);
        assert_eq!(fs::read(&src).unwrap(), b"uploaded and more");
    }
}

/// A symlink to the very file that was uploaded is still refused: the upload was of a regular
/// file at that path, and moving or removing a link is not what was asked.
#[cfg(unix)]
#[test]
fn a_source_that_is_now_a_symlink_is_left_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("in/report.pdf");
    let real = tmp.path().join("in/real.pdf");
    let id = write(&src, b"uploaded");
    fs::rename(&src, &real).unwrap();
    std::os::unix::fs::symlink(&real, &src).unwrap();
    assert_eq!(
        Identity::of(&fs::metadata(&src).unwrap()).without_ctime(),
        id.without_ctime()
    );
    let out = tmp.path().join("out");
    for (after, force_copy) in [(move_to(&out), false), (move_to(&out), true)] {
        let change = change_of(apply_with(&after, &src, &id, force_copy));
        assert_eq!(change, Change::NotAFile);
    }
    assert_eq!(
        change_of(apply(&After::Remove, &src, &id)),
        Change::NotAFile
    );
    assert!(src.is_symlink());
    assert_eq!(fs::read(&real).unwrap(), b"uploaded");
    assert!(!out.exists());
}

#[test]
fn a_missing_source_is_reported_as_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("in/report.pdf");
    let id = write(&src, b"uploaded");
    fs::remove_file(&src).unwrap();
    let out = tmp.path().join("out");
    for after in [move_to(&out), After::Remove] {
        assert_eq!(change_of(apply(&after, &src, &id)), Change::Gone);
    }
}

#[test]
fn remove_unlinks_the_source_and_keep_leaves_it() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("in/report.pdf");
    let id = write(&src, b"uploaded");
    assert_eq!(apply(&After::Keep, &src, &id).unwrap(), Outcome::Kept);
    assert_eq!(fs::read(&src).unwrap(), b"uploaded");
    assert_eq!(apply(&After::Remove, &src, &id).unwrap(), Outcome::Removed);
    assert!(!src.exists());
    assert_eq!(names(&tmp.path().join("in")), Vec::<String>::new());
}

#[test]
fn the_destination_is_created_with_its_parents() {
    for force_copy in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("in/report.pdf");
        let id = write(&src, b"uploaded");
        let out = tmp.path().join("done/2025/06");
        let done = apply_with(&move_to(&out), &src, &id, force_copy).unwrap();
        let to = out.join("report.pdf");
        assert_eq!(done, Outcome::Moved { to: to.clone() });
        assert_eq!(fs::read(&to).unwrap(), b"uploaded");
    }
}

#[test]
fn the_source_folder_is_refused_as_the_destination() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("in/report.pdf");
    let id = write(&src, b"uploaded");
    let same = tmp.path().join("in/../in/.");
    let err = apply(&move_to(&same), &src, &id).unwrap_err();
    assert!(matches!(err, MoveError::SameFolder { .. }), "{err:?}");
    assert_eq!(names(&tmp.path().join("in")), ["report.pdf"]);
}

/// The window between the check and the rename: if the rename took another file, it goes
/// back under the source's name, without replacing anything that is there now.
#[test]
fn a_file_renamed_in_the_check_window_is_put_back() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("in/report.pdf");
    let id = write(&src, b"uploaded");
    // The uploaded file stays alive elsewhere so its inode is not reused.
    fs::rename(&src, tmp.path().join("kept.pdf")).unwrap();
    let to = tmp.path().join("out/report.pdf");
    write(&to, b"another file, longer");
    let err = place::verify_moved(&src, &to, &id).unwrap_err();
    assert!(matches!(err, MoveError::Replaced { .. }), "{err:?}");
    assert_eq!(fs::read(&src).unwrap(), b"another file, longer");
    assert!(!to.exists());

    // When the source's name is taken again meanwhile, nothing is replaced: the user is told.
    fs::rename(&src, &to).unwrap();
    write(&src, b"a third file");
    let err = place::verify_moved(&src, &to, &id).unwrap_err();
    assert!(matches!(err, MoveError::Misplaced { .. }), "{err:?}");
    assert!(err.to_string().contains("move it back by hand"));
    assert_eq!(fs::read(&src).unwrap(), b"a third file");
    assert_eq!(fs::read(&to).unwrap(), b"another file, longer");
}

/// Many files of one name moved into one folder at once: each gets its own name, none is lost
/// or overwritten (a free name chosen first and then renamed onto lets two take the same one).
#[test]
fn files_of_one_name_moved_at_once_never_overwrite_each_other() {
    for force_copy in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let sources: Vec<(PathBuf, Identity, Vec<u8>)> = (0..24)
            .map(|i| {
                let src = tmp.path().join(format!("in{i}/report.pdf"));
                let body = format!("file number {i}").into_bytes();
                let id = write(&src, &body);
                (src, id, body)
            })
            .collect();
        let barrier = std::sync::Barrier::new(sources.len());
        let moved: Vec<PathBuf> = std::thread::scope(|s| {
            let handles: Vec<_> = sources
                .iter()
                .map(|(src, id, _)| {
                    let (out, barrier) = (&out, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        match apply_with(&move_to(out), src, id, force_copy).unwrap() {
                            Outcome::Moved { to } => to,
                            other => panic!("{other:?}"),
                        }
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(names(&out).len(), sources.len(), "copy: {force_copy}");
        for ((src, _, body), to) in sources.iter().zip(&moved) {
            assert!(!src.exists());
            assert_eq!(&fs::read(to).unwrap(), body, "{}", to.display());
        }
    }
}

/// A rewrite of the same size with its modification time put back is still a change: the
/// change time moved, and a program cannot set it back.
#[cfg(unix)]
#[test]
fn a_same_size_rewrite_with_the_mtime_put_back_is_left_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("in/report.pdf");
    let id = write(&src, b"uploaded");
    let modified = fs::metadata(&src).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let f = OpenOptions::new().write(true).open(&src).unwrap();
    io::Write::write_all(&mut &f, b"REPLACED").unwrap();
    f.set_modified(modified).unwrap();
    drop(f);
    let out = tmp.path().join("out");
    for (after, force_copy) in [
        (After::Remove, false),
        (move_to(&out), false),
        (move_to(&out), true),
    ] {
        let change = change_of(apply_with(&after, &src, &id, force_copy));
        assert_eq!(change, Change::Modified);
    }
    assert_eq!(fs::read(&src).unwrap(), b"REPLACED");
}

/// The copy is readable by its owner only while it is written (its final mode is the
/// source's, set once it is complete).
#[cfg(unix)]
#[test]
fn the_temporary_copy_is_private_while_it_is_written() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("slow-source");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let out = tmp.path().join("out");
    fs::create_dir_all(&out).unwrap();
    let reader = {
        let (fifo, out) = (fifo.clone(), out.clone());
        std::thread::spawn(move || {
            let mut from = File::open(&fifo).unwrap();
            copy::write_temp_for_test(&mut from, &out)
        })
    };
    let mut writer = OpenOptions::new().write(true).open(&fifo).unwrap();
    io::Write::write_all(&mut writer, b"first half of the bytes").unwrap();
    let temp = loop {
        if let Some(name) = names(&out).into_iter().next() {
            break out.join(name);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let mode = fs::metadata(&temp).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "mode {mode:o} while being written");
    drop(writer);
    reader.join().unwrap();
}

#[test]
fn stale_temporary_copies_are_cleared_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let ours = out.join(format!(".gcupload-{}.part", uuid::Uuid::new_v4().simple()));
    write(&ours, b"a partial copy from a killed run");
    write(&out.join(".gcupload-notours.part"), b"x");
    write(&out.join("report.pdf"), b"x");
    fs::create_dir_all(out.join(format!(".gcupload-{}.part", uuid::Uuid::new_v4().simple())))
        .unwrap();
    // A fresh one may be a live copy of another run: kept.
    assert_eq!(copy::clear_stale(&out, copy::STALE_AFTER), 0);
    assert!(ours.exists());
    assert_eq!(copy::clear_stale(&out, std::time::Duration::ZERO), 1);
    assert!(!ours.exists());
    assert_eq!(names(&out).len(), 3);
}
