//! kill -9 at random moments of `prune`: afterwards the repository verifies, every remaining
//! snapshot exports byte for byte as before, and a rerun of prune completes and frees the
//! space. Complements tests/prune_crash.rs, which stops at each named step.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::fake_server::{FakeServer, Rng};
use common::ok;

const ROUNDS: u64 = 16;

fn ids(root: &Path, repo: &Path) -> Vec<String> {
    let out = ok(common::repo_bin(root, repo).args(["snapshots", "--json"]));
    serde_json::from_str::<serde_json::Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn export(root: &Path, repo: &Path, id: &str, dir: &Path) -> blake3::Hash {
    let p = dir.join("x.tar");
    ok(common::repo_bin(root, repo)
        .args(["export", id, "-c", "none"])
        .arg(&p));
    let h = blake3::hash(&std::fs::read(&p).unwrap());
    std::fs::remove_file(&p).unwrap();
    h
}

#[test]
fn kill_during_prune_leaves_every_snapshot_restorable() {
    let server = FakeServer::new(150, true);
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let big = server.p("/var/lib/opsi/config/audit/bigclient.example.org.sw");
    ok(common::repo_bin(server.root(), &repo).arg("init"));
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Rng::new(seed);
    let mut interrupted = 0;
    let mut exported: BTreeMap<String, blake3::Hash> = BTreeMap::new();
    for round in 0..ROUNDS {
        // A new night with changed data; the oldest night is forgotten, so prune has work.
        let text: String = (0..200_000)
            .map(|i| format!("[SW_{i}]\nid = {:016x}\n", rng.next()))
            .collect();
        std::fs::write(&big, text).unwrap();
        ok(common::repo_bin(server.root(), &repo).arg("create"));
        let all = ids(server.root(), &repo);
        let newest = all.last().unwrap().clone();
        exported.insert(
            newest.clone(),
            export(server.root(), &repo, &newest, work.path()),
        );
        if all.len() > 2 {
            ok(common::repo_bin(server.root(), &repo).args(["forget", &all[0]]));
            exported.remove(&all[0]);
        }
        let ms = 1 + rng.below(60);
        let mut child = common::repo_bin(server.root(), &repo)
            .args(["prune", "--repack-threshold", "100"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(ms));
        if child.try_wait().unwrap().is_none() {
            interrupted += 1;
        }
        let _ = child.kill();
        let _ = child.wait();

        let ctx = format!("round {round}, killed after {ms} ms (seed {seed})");
        let (code, out, err) = common::run(common::repo_bin(server.root(), &repo).arg("verify"));
        assert_eq!(code, 0, "{ctx}: verify fails:\n{out}{err}");
        let now = ids(server.root(), &repo);
        let now_set: BTreeSet<&String> = now.iter().collect();
        assert_eq!(
            now_set,
            exported.keys().collect::<BTreeSet<_>>(),
            "{ctx}: the snapshots are not those kept"
        );
        for (id, h) in &exported {
            assert!(now.contains(id), "{ctx}: snapshot {id} is gone");
            assert_eq!(
                export(server.root(), &repo, id, work.path()),
                *h,
                "{ctx}: snapshot {id} exports differently"
            );
        }
    }
    eprintln!("prune was killed while running in {interrupted} of {ROUNDS} rounds (seed {seed})");
    // A rerun completes and frees the space: nothing is left to prune.
    let t = std::time::Instant::now();
    let out =
        ok(common::repo_bin(server.root(), &repo).args(["prune", "--repack-threshold", "100"]));
    eprintln!("last prune {:?}: {out}", t.elapsed());
    let out = ok(common::repo_bin(server.root(), &repo).args([
        "prune",
        "--json",
        "--repack-threshold",
        "100",
    ]));
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["bytes_freed"], 0, "{r}");
    assert_eq!(r["packs_deleted"], 0, "{r}");
    assert_eq!(
        r["bytes_after"].as_u64().unwrap(),
        common::dir_size(&repo.join("packs"))
    );
    ok(common::repo_bin(server.root(), &repo).arg("verify"));
}
