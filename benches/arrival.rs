//! What the "is it still being written?" check costs per file (`arrival::check`): the common
//! case (no writer: one open, a read lease taken and given back, a close), a file with a writer
//! (the lease is refused, then `/proc` is scanned to name the writer), and for scale the run's
//! validation of the same small file. `cargo bench --bench arrival`; GCUPLOAD_BENCH_FILES (2000).

// A benchmark reports on stdout.
#![allow(clippy::disallowed_macros)]

use std::io::Write;
use std::time::{Duration, Instant};

use gcupload::arrival;

fn per_file(files: &[std::path::PathBuf], f: impl Fn(&std::path::Path)) -> Duration {
    // Median of 5 passes over all the files, per file.
    let mut passes: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for p in files {
                f(p);
            }
            t.elapsed() / files.len() as u32
        })
        .collect();
    passes.sort();
    passes[2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = std::env::var("GCUPLOAD_BENCH_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000usize);
    let dir = tempfile::tempdir().unwrap();
    let mut doc = b"%PDF-1.7\n".to_vec();
    doc.resize(64 << 10, b'x');
    let files: Vec<_> = (0..n)
        .map(|i| {
            let p = dir.path().join(format!("f{i:05}.pdf"));
            std::fs::write(&p, &doc).unwrap();
            p
        })
        .collect();

    let free = per_file(&files, |p| {
        let meta = std::fs::metadata(p).unwrap();
        assert!(arrival::check(p, &meta, Duration::ZERO).is_ok());
    });
    let stat_only = per_file(&files, |p| {
        std::hint::black_box(std::fs::metadata(p).unwrap());
    });

    // Files held open for writing by this process: the lease is refused and the writer is
    // named from a /proc snapshot (one scan a second at most, shared by the batch).
    let held = &files[..files.len().min(50)];
    let _writers: Vec<_> = held
        .iter()
        .map(|p| {
            let mut f = std::fs::OpenOptions::new().append(true).open(p).unwrap();
            f.write_all(b"").unwrap();
            f
        })
        .collect();
    let with_writer = per_file(held, |p| {
        let meta = std::fs::metadata(p).unwrap();
        assert!(arrival::check(p, &meta, Duration::ZERO).is_err());
    });
    // One snapshot scan of /proc on its own: the first file checked after the snapshot aged.
    std::thread::sleep(Duration::from_millis(1100));
    let t = Instant::now();
    let meta = std::fs::metadata(&held[0]).unwrap();
    assert!(arrival::check(&held[0], &meta, Duration::ZERO).is_err());
    let scan = t.elapsed();
    let processes = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|s| s.parse::<u32>().is_ok())
                })
                .count()
        })
        .unwrap_or(0);

    let policy = gcupload::validate::Policy::new(10 << 20, &[], false).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let validate = per_file(&files[held.len()..], |p| {
        rt.block_on(gcupload::validate::validate(p, &policy))
            .unwrap();
    });

    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("arrival check per file ({n} files of 64 KiB, {processes} processes on the machine):");
    println!(
        "  no writer (open + lease + close): {:.1} µs  (a stat alone: {:.1} µs)",
        us(free),
        us(stat_only)
    );
    println!(
        "  a writer (lease refused, named from the shared /proc snapshot): {:.1} µs; one snapshot scan: {:.1} µs",
        us(with_writer),
        us(scan)
    );
    println!(
        "  for scale, validating the same file (read, SHA-256, XXH3): {:.1} µs",
        us(validate)
    );
}
