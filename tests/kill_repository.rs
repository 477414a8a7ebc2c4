//! kill -9 at many moments of `create` and `import` into a repository: afterwards every
//! committed snapshot verifies and restores, and the next run works (leftovers are cleaned or
//! reused). Complements tests/store_crash.rs, which stops at each named step of the commit
//! protocol.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::fake_server::FakeServer;
use common::{bin, ok, tree};

fn snapshot_count(root: &Path, repo: &Path) -> usize {
    let out = ok(common::repo_bin(root, repo).args(["snapshots", "--json"]));
    serde_json::from_str::<serde_json::Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .len()
}

/// How long `cmd` takes when nothing kills it.
fn run_time(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    ok(cmd);
    start.elapsed()
}

#[test]
fn kill_during_create_and_import_leaves_a_working_repository() {
    let server = FakeServer::new(150, true);
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    ok(common::repo_bin(server.root(), &repo).arg("init"));
    ok(common::repo_bin(server.root(), &repo).arg("create"));
    let archive = work.path().join("a.tar.gz");
    ok(bin(server.root())
        .args(["create", "-c", "gz"])
        .arg(&archive));

    // A kill after the command finished tests nothing, and fixed delays in ms would miss the
    // run in a release build (several times faster) or on a loaded machine: the kill moments
    // are fractions of an uninterrupted run of the same command, measured here.
    let create_time = run_time(common::repo_bin(server.root(), &repo).arg("create"));
    let import_time = run_time(
        common::repo_bin(server.root(), &repo)
            .arg("import")
            .arg(&archive),
    );
    let fractions = [
        0.01, 0.03, 0.06, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 0.9,
    ];

    let mut committed = snapshot_count(server.root(), &repo);
    let mut killed = Vec::new();
    for (i, fraction) in fractions.iter().enumerate() {
        // Change a client every round so each create has new data to write.
        let f = server.p(&format!(
            "/var/lib/opsi/config/clients/client{:04}.example.org.ini",
            i
        ));
        std::fs::write(&f, format!("[info]\nround = {i}\n")).unwrap();
        let mut c = common::repo_bin(server.root(), &repo);
        let run = if i % 3 == 2 {
            c.arg("import").arg(&archive);
            import_time
        } else {
            c.arg("create");
            create_time
        };
        let ms = (run.as_secs_f64() * 1000.0 * fraction).max(1.0) as u64;
        if common::kill_after(c, Duration::from_millis(ms)) {
            killed.push(ms);
        }
        let now = snapshot_count(server.root(), &repo);
        assert!(now >= committed, "a committed snapshot disappeared");
        committed = now;
        let (code, out, err) = common::run(common::repo_bin(server.root(), &repo).arg("verify"));
        assert_eq!(
            code, 0,
            "after a kill at {ms} ms the repository does not verify:\n{out}{err}"
        );
    }
    // Runs vary (load, caches, a night's new data), so a late moment may still find the
    // command done; most kills must land mid-run, or the rounds above tested little.
    assert!(
        killed.len() * 4 >= fractions.len() * 3,
        "only {} of {} kills landed mid-run (at {killed:?} ms; uninterrupted create {create_time:?}, import {import_time:?})",
        killed.len(),
        fractions.len()
    );
    // The next run works and restores what the server holds now.
    ok(common::repo_bin(server.root(), &repo).arg("create"));
    let target = tempfile::tempdir().unwrap();
    ok(common::repo_bin(target.path(), &repo).args(["restore", "latest", "--configuration"]));
    tree::assert_same(
        &server.p("/var/lib/opsi/config"),
        &target.path().join("var/lib/opsi/config"),
    );
    // Nothing of the killed runs is left in tmp/ once a run had the exclusive lock.
    let leftovers: Vec<_> = std::fs::read_dir(repo.join("tmp"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.len() <= 1, "leftovers in tmp/: {leftovers:?}");
}
