//! Measurement (ignored by default): 30 nightly backups of a generated opsi server with 1% of
//! its files changed each night, then `forget --keep-daily 7 --keep-weekly 4` and `prune`.
//! Prints disk use before and after, time and peak memory (`/usr/bin/time -v`) of prune.
//!
//! `PRUNE_MEASURE_CLIENTS=2000 cargo test --release --test prune_measure -- --ignored --nocapture`

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::fake_server::{FakeServer, Rng};
use common::{bin, ok};

/// Runs `opsi-backup ARGS` under /usr/bin/time -v; returns stdout, seconds and peak RSS (KiB).
fn timed(root: &Path, repo: &Path, args: &[&str]) -> (String, f64, u64) {
    let plain = common::repo_bin(root, repo);
    let mut c = Command::new("/usr/bin/time");
    c.arg("-v").arg(plain.get_program()).args(plain.get_args());
    for (k, v) in plain.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.args(args);
    let t = Instant::now();
    let out = c.output().unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let rss = err
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (String::from_utf8_lossy(&out.stdout).into_owned(), secs, rss)
}

#[test]
#[ignore = "a measurement; run by hand"]
fn thirty_nights_forget_and_prune() {
    let clients: usize = std::env::var("PRUNE_MEASURE_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let server = FakeServer::new(clients, true);
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    ok(common::repo_bin(server.root(), &repo).arg("init"));
    let files: Vec<PathBuf> = walkdir::WalkDir::new(server.p("/var/lib/opsi/config"))
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    let data = common::dir_size(&server.p("/var/lib/opsi/config"));
    let mut rng = Rng::new(42);
    let t = Instant::now();
    for night in 1..=30u32 {
        // 1% of the files change a line in their middle (the big audit file included).
        for _ in 0..files.len().div_ceil(100) {
            let f = &files[rng.below(files.len() as u64) as usize];
            let mut b = std::fs::read(f).unwrap();
            let at = b.len() / 2;
            b.splice(
                at..at,
                format!("\nchanged = night {night} {:x}\n", rng.next()).bytes(),
            );
            std::fs::write(f, b).unwrap();
        }
        let big = server.p("/var/lib/opsi/config/audit/bigclient.example.org.sw");
        let mut b = std::fs::read(&big).unwrap();
        for _ in 0..(b.len() / 100 / 4096).max(1) {
            let at = rng.below(b.len() as u64 - 4096) as usize;
            b[at..at + 4096].copy_from_slice(format!("{:04095x}\n", rng.next()).as_bytes());
        }
        std::fs::write(&big, b).unwrap();
        // Named like the original names archives: import takes the night's time from it.
        let archive = work.path().join(format!(
            "opsiserver_4.3.0.28_2026-01-{:02}_03-00-00.tar",
            night
        ));
        ok(bin(server.root())
            .args(["create", "-c", "none"])
            .arg(&archive));
        ok(common::repo_bin(server.root(), &repo)
            .arg("import")
            .arg(&archive));
        std::fs::remove_file(&archive).unwrap();
    }
    let nights = t.elapsed().as_secs_f64();
    let before = common::dir_size(&repo);
    let packs_before = common::dir_size(&repo.join("packs"));
    let (out, forget_s, forget_rss) = timed(
        server.root(),
        &repo,
        &["forget", "--keep-daily", "7", "--keep-weekly", "4"],
    );
    let removed = out.matches(" remove ").count();
    let (out, prune_s, prune_rss) = timed(server.root(), &repo, &["prune"]);
    let after = common::dir_size(&repo);
    ok(common::repo_bin(server.root(), &repo).arg("verify"));
    eprintln!(
        "{clients} clients, {:.1} MB of file backend data, 1% of files changed per night\n\
         30 nights stored in {nights:.1} s; repository {:.2} MB (packs {:.2} MB)\n\
         forget --keep-daily 7 --keep-weekly 4: {removed} of 30 removed, {forget_s:.2} s, peak RSS {} KiB\n\
         prune: {prune_s:.2} s, peak RSS {} KiB\n{out}\
         repository after: {:.2} MB (packs {:.2} MB)",
        data as f64 / 1e6,
        before as f64 / 1e6,
        packs_before as f64 / 1e6,
        forget_rss,
        prune_rss,
        after as f64 / 1e6,
        common::dir_size(&repo.join("packs")) as f64 / 1e6,
    );
}
