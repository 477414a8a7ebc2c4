//! kill -9 trials of every command that writes a repository, for the figures the trust issue
//! asks for: `create`, `import`, `forget --prune` and `prune` are each killed at a random
//! moment of their run (seeded), then a full `verify` must pass and every snapshot that was
//! committed must still be there. Ignored by default (minutes); run with
//! `KILL_TRIALS=50 cargo test --release --test kill_trials -- --ignored --nocapture`.
//! tests/kill_repository.rs and tests/prune_kill.rs keep a short version in every test run.

mod common;

use std::path::Path;
use std::time::Duration;

use common::fake_server::{FakeServer, Rng};
use common::ok;

fn ids(root: &Path, repo: &Path) -> Vec<String> {
    common::snapshots(root, repo)
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

struct Tally {
    trials: u32,
    mid_run: u32,
    verify_failed: u32,
    lost: u32,
}

#[test]
#[ignore = "minutes of kill -9 trials; run by hand for the figures"]
fn kill_every_writing_command_at_random_moments() {
    let trials: u32 = std::env::var("KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25);
    let seed: u64 = std::env::var("KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let server = FakeServer::new(150, true);
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let big = server.p("/var/lib/opsi/config/audit/bigclient.example.org.sw");
    let archive = work.path().join("a.tar.gz");
    let mut rng = Rng::new(seed);
    let r = |repo: &Path| common::repo_bin(server.root(), repo);
    ok(r(&repo).arg("init"));
    ok(r(&repo).arg("create"));

    let mut report = Vec::new();
    for what in ["create", "import", "forget --prune", "prune"] {
        let mut t = Tally {
            trials,
            mid_run: 0,
            verify_failed: 0,
            lost: 0,
        };
        let mut max_ms = 700;
        for trial in 0..trials {
            // A new night, so that every command has data to write or to free.
            let text: String = (0..100_000)
                .map(|i| format!("[SW_{i}]\nid = {:016x}\n", rng.next()))
                .collect();
            std::fs::write(&big, text).unwrap();
            let mut cmd = r(&repo);
            match what {
                "create" => {
                    cmd.arg("create");
                }
                "import" => {
                    ok(common::bin(server.root())
                        .args(["create", "-c", "gz"])
                        .arg(&archive));
                    cmd.arg("import").arg(&archive);
                }
                "forget --prune" => {
                    ok(r(&repo).arg("create"));
                    cmd.args(["forget", "--keep-last", "2", "--prune"]);
                }
                _ => {
                    ok(r(&repo).arg("create"));
                    let all = ids(server.root(), &repo);
                    if all.len() > 2 {
                        ok(r(&repo).args(["forget", &all[0]]));
                    }
                    cmd.args(["prune", "--repack-threshold", "100"]);
                }
            }
            let before = ids(server.root(), &repo);
            // Kill at a random moment before `max_ms`, which follows the command's run time:
            // it shrinks when the command was already done at the kill, grows when it was not.
            let ms = 1 + rng.below(max_ms);
            if common::kill_after(cmd, Duration::from_millis(ms)) {
                t.mid_run += 1;
                max_ms = (max_ms * 5 / 4).min(5_000);
            } else {
                max_ms = (max_ms * 2 / 3).max(5);
            }
            let (code, out, err) = common::run(r(&repo).arg("verify"));
            if code != 0 {
                t.verify_failed += 1;
                eprintln!("{what} trial {trial} (killed at {ms} ms, seed {seed}): verify failed:\n{out}{err}");
            }
            let after = ids(server.root(), &repo);
            // Every snapshot committed before stays, except those forget may remove (all but
            // the newest two; `snapshots` lists the oldest first).
            let required = match what {
                "forget --prune" => &before[before.len().saturating_sub(2)..],
                _ => &before[..],
            };
            let missing: Vec<_> = required.iter().filter(|id| !after.contains(id)).collect();
            if !missing.is_empty() {
                t.lost += 1;
                eprintln!("{what} trial {trial} (killed at {ms} ms): lost {missing:?}");
            }
        }
        report.push((what, t));
    }
    eprintln!("command          trials  killed mid-run  verify failed  snapshots lost");
    for (what, t) in &report {
        eprintln!(
            "{what:<16} {:>6}  {:>14}  {:>13}  {:>14}",
            t.trials, t.mid_run, t.verify_failed, t.lost
        );
    }
    for (what, t) in &report {
        assert_eq!(t.verify_failed, 0, "{what}: verify failed after a kill");
        assert_eq!(t.lost, 0, "{what}: a committed snapshot was lost");
    }
}
