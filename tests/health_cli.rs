//! `health`, the monitoring check, through the binary: each state with its exit code and
//! status line, that it only reads (no lock taken or waited for, nothing changed), and the
//! detailed exit codes of the repository commands beside the original's.

mod common;

use std::path::{Path, PathBuf};

use std::time::{Duration, Instant, SystemTime};

use common::fake_server::FakeServer;
use common::{bin, ok, repo_bin, run};

/// Thresholds that keep the disk of the machine running the tests out of the result.
const ANY_SPACE: [&str; 4] = ["--space-warning", "0%", "--space-critical", "0%"];

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A repository with one snapshot taken `hours` ago per entry (imported from an archive named
/// like the original names them: import takes the time from the name).
fn repository(server: &FakeServer, work: &Path, hours: &[i64]) -> PathBuf {
    let repo = work.join("repo");
    ok(repo_bin(server.root(), &repo).arg("init"));
    let a = work.join("a.tar");
    ok(bin(server.root()).args(["create", "-c", "none"]).arg(&a));
    for h in hours {
        let at = chrono::Local::now() - chrono::Duration::hours(*h);
        let dir = tempfile::tempdir_in(work).unwrap();
        let p = dir.path().join(format!(
            "opsiserver_4.3.0.28_{}.tar",
            at.format("%Y-%m-%d_%H-%M-%S")
        ));
        std::fs::copy(&a, &p).unwrap();
        ok(repo_bin(server.root(), &repo).arg("import").arg(&p));
    }
    repo
}

/// `health` with `args`: (exit code, the status line); exactly one line on stdout.
fn health(server: &FakeServer, repo: &Path, args: &[&str]) -> (i32, String) {
    let (code, out, err) = run(repo_bin(server.root(), repo).arg("health").args(args));
    assert_eq!(out.lines().count(), 1, "one status line: {out:?} {err}");
    (code, out.trim_end().to_string())
}

fn write_last_verify(repo: &Path, finished: i64, ok: bool, problems: u64) {
    std::fs::create_dir_all(repo.join("state")).unwrap();
    let record = serde_json::json!({
        "started": finished - 60, "finished": finished, "ok": ok, "problems": problems,
        "snapshots": 1, "packs": 1, "chunks": 10, "bytes": 1000
    });
    std::fs::write(repo.join("state/last-verify.json"), record.to_string()).unwrap();
}

/// A lock holder record of a live process (this test), taken `age` seconds ago.
fn fake_holder(repo: &Path, name: &str, pid: u32, age: i64) {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    std::fs::create_dir_all(repo.join("locks")).unwrap();
    let record = serde_json::json!({
        "pid": pid, "host": host.trim(), "kind": "exclusive", "purpose": "prune unused data",
        "command": "opsi-backup forget --prune", "since": now() - age
    });
    std::fs::write(repo.join("locks").join(name), record.to_string()).unwrap();
}

/// Names, sizes and times of the repository's files, but SQLite's coordination files (and
/// the time of the directory they are created in).
fn listing(repo: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let mut out: Vec<_> = walkdir::WalkDir::new(repo)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .filter(|e| {
            let name = e.file_name().to_string_lossy();
            !name.ends_with("-wal") && !name.ends_with("-shm")
        })
        .map(|e| {
            let m = e.metadata().unwrap();
            (e.path().to_path_buf(), m.len(), m.modified().unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn ok_warning_and_critical_by_the_age_of_the_newest_snapshot() {
    let server = FakeServer::new(3, false);
    let work = tempfile::tempdir().unwrap();
    let repo = repository(&server, work.path(), &[75, 3]);
    ok(repo_bin(server.root(), &repo).arg("verify"));
    let (code, line) = health(&server, &repo, &ANY_SPACE);
    assert_eq!(code, 0, "{line}");
    assert!(
        line.starts_with("OPSI-BACKUP OK - newest snapshot 3h ago (host opsiserver.example.org, ")
            && line.contains(", last full verify ")
            && line.contains("% free (")
            && line.contains(" | age=10")
            && line.contains("s;93600;180000;0 verify_age=")
            && line.contains("s;691200;1296000;0 lock_age=0s;21600;;0 free="),
        "{line}"
    );

    let mut args = ANY_SPACE.to_vec();
    args.extend(["--warning", "2h", "--critical", "5h"]);
    let (code, line) = health(&server, &repo, &args);
    assert_eq!(code, 1, "{line}");
    assert!(
        line.starts_with("OPSI-BACKUP WARNING - newest snapshot 3h ago > 2h (host "),
        "{line}"
    );

    let (code, line) = health(&server, &repo, &["--warning", "1h", "--critical", "2h"]);
    assert_eq!(code, 2, "{line}");
    assert!(
        line.starts_with("OPSI-BACKUP CRITICAL - newest snapshot 3h ago > 2h"),
        "{line}"
    );
    let (code, line) = health(&server, &repo, &["--host", "other.example.org"]);
    assert_eq!(code, 2, "{line}");
    assert!(
        line.starts_with("OPSI-BACKUP CRITICAL - no snapshot of host other.example.org, ")
            && line.contains("| age=U;"),
        "{line}"
    );
}

#[test]
fn thirty_hours_is_a_warning_and_three_days_critical_with_the_defaults() {
    let server = FakeServer::new(2, false);
    let work = tempfile::tempdir().unwrap();
    let repo = repository(&server, work.path(), &[30]);
    write_last_verify(&repo, now() - 3600, true, 0);
    let (code, line) = health(&server, &repo, &ANY_SPACE);
    assert_eq!(code, 1, "{line}");
    assert!(
        line.starts_with("OPSI-BACKUP WARNING - newest snapshot 30h ago > 26h (host ")
            && line.contains("last full verify 60min ago,"),
        "{line}"
    );

    let work = tempfile::tempdir().unwrap();
    let repo = repository(&server, work.path(), &[72]);
    write_last_verify(&repo, now() - 3600, true, 0);
    let (code, line) = health(&server, &repo, &ANY_SPACE);
    assert_eq!(code, 2, "{line}");
    assert!(
        line.starts_with("OPSI-BACKUP CRITICAL - newest snapshot 3d ago > 50h (host "),
        "{line}"
    );
}

#[test]
fn an_old_or_failed_or_missing_verify() {
    let server = FakeServer::new(5, false);
    let work = tempfile::tempdir().unwrap();
    let repo = repository(&server, work.path(), &[1]);

    // Never verified: a new repository has the thresholds' grace, an old one has not.
    let (code, line) = health(&server, &repo, &ANY_SPACE);
    assert_eq!(code, 0, "{line}");
    assert!(
        line.contains(", no full verify yet (repository created ")
            && line.contains("s ago), ")
            && line.contains("verify_age=U;691200;1296000;0"),
        "{line}"
    );
    let config = std::fs::File::options()
        .write(true)
        .open(repo.join("config.json"))
        .unwrap();
    config
        .set_modified(SystemTime::now() - Duration::from_secs(10 * 86_400))
        .unwrap();
    let (code, line) = health(&server, &repo, &ANY_SPACE);
    assert_eq!(code, 1, "{line}");
    assert!(
        line.starts_with("OPSI-BACKUP WARNING - ")
            && line.contains("no full verify yet (repository created 10d ago) > 8d"),
        "{line}"
    );

    // Old records.
    write_last_verify(&repo, now() - 9 * 86_400, true, 0);
    let (code, line) = health(&server, &repo, &ANY_SPACE);
    assert_eq!(code, 1, "{line}");
    assert!(line.contains("last full verify 9d ago > 8d"), "{line}");
    write_last_verify(&repo, now() - 16 * 86_400, true, 0);
    let (code, line) = health(&server, &repo, &ANY_SPACE);
    assert_eq!(code, 2, "{line}");
    assert!(
        line.starts_with("OPSI-BACKUP CRITICAL - ")
            && line.contains("last full verify 16d ago > 15d"),
        "{line}"
    );

    // A verify that finds damage records it; health says so until a verify passes again.
    let pack = common::largest_pack(&repo);
    let good = std::fs::read(&pack).unwrap();
    let mut bad = good.clone();
    bad[good.len() / 4] ^= 0xff;
    std::fs::write(&pack, &bad).unwrap();
    let (code, _, _) = run(repo_bin(server.root(), &repo).arg("verify"));
    assert_eq!(code, 1);
    std::fs::write(&pack, &good).unwrap();
    let (code, line) = health(&server, &repo, &ANY_SPACE);
    assert_eq!(code, 2, "{line}");
    assert!(
        line.starts_with("OPSI-BACKUP CRITICAL - newest snapshot 60min ago (host ")
            && line.contains("s ago FAILED (")
            && line.contains(" problems)"),
        "{line}"
    );
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.join("state/last-verify.json")).unwrap())
            .unwrap();
    assert_eq!(record["ok"], false, "{record}");
    assert!(record["problems"].as_u64().unwrap() > 0, "{record}");
    // A verify of one snapshot is not a verify of the whole repository: not recorded.
    ok(repo_bin(server.root(), &repo).args(["verify", "latest"]));
    assert_eq!(health(&server, &repo, &ANY_SPACE).0, 2);
    ok(repo_bin(server.root(), &repo).arg("verify"));
    assert_eq!(health(&server, &repo, &ANY_SPACE).0, 0);
}

#[test]
fn a_lock_held_long_is_a_warning_and_health_neither_waits_nor_changes_anything() {
    let server = FakeServer::new(2, false);
    let work = tempfile::tempdir().unwrap();
    let repo = repository(&server, work.path(), &[1]);
    ok(repo_bin(server.root(), &repo).arg("verify"));
    let mut holder = common::hold_lock(&repo);
    fake_holder(&repo, "7h.json", std::process::id(), 7 * 3600);
    // A record of a process that died on this host: skipped, and left where it is.
    fake_holder(&repo, "dead.json", 1 << 30, 30 * 3600);
    let before = listing(&repo);
    let start = Instant::now();
    let (code, out, err) = run(repo_bin(server.root(), &repo)
        .args(["--lock-wait", "3600", "health"])
        .args(ANY_SPACE));
    assert!(start.elapsed() < Duration::from_secs(20), "health waited");
    assert!(!err.contains("waiting"), "{err}");
    assert_eq!(code, 1, "{out}{err}");
    let pid = std::process::id();
    assert!(
        out.starts_with("OPSI-BACKUP WARNING - newest snapshot 60min ago (host ")
            && out.contains(&format!(
                ", locked for 7h > 6h by pid {pid} on {} (exclusive lock to prune unused data), ",
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .unwrap()
                    .trim()
            ))
            && out.contains(" lock_age=25200s;21600;;0 "),
        "{out}"
    );
    let (code, line) = health(
        &server,
        &repo,
        &[&ANY_SPACE[..], &["--lock-critical", "5h"]].concat(),
    );
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("locked for 7h > 5h by pid"), "{line}");
    let after = listing(&repo);
    assert_eq!(after.len(), before.len(), "{after:?}");
    for (a, b) in after.iter().zip(&before) {
        assert_eq!(a, b, "health changed the repository");
    }
    drop(holder.stdin.take());
    holder.wait().unwrap();
}

#[test]
fn free_space_thresholds_in_percent_and_size() {
    let server = FakeServer::new(2, false);
    let work = tempfile::tempdir().unwrap();
    let repo = repository(&server, work.path(), &[1]);
    ok(repo_bin(server.root(), &repo).arg("verify"));
    let (code, line) = health(
        &server,
        &repo,
        &["--space-warning", "100%", "--space-critical", "0%"],
    );
    assert_eq!(code, 1, "{line}");
    assert!(
        line.contains("% free < 100% (")
            && line.contains(" free=")
            && line.contains(";100:;0:;0;100 "),
        "{line}"
    );
    let (code, line) = health(
        &server,
        &repo,
        &["--space-warning", "0%", "--space-critical", "1000000T"],
    );
    assert_eq!(code, 2, "{line}");
    assert!(
        line.starts_with("OPSI-BACKUP CRITICAL - ")
            && line.contains("% free < ")
            && line.contains(";;1099511627776000000:;0;"),
        "{line}"
    );
}

#[test]
fn unknown_when_the_check_cannot_look_critical_for_a_damaged_index() {
    let server = FakeServer::new(2, false);
    let work = tempfile::tempdir().unwrap();
    let missing = work.path().join("missing");
    let (code, line) = health(&server, &missing, &[]);
    assert_eq!(code, 3, "{line}");
    assert_eq!(
        line,
        format!(
            "OPSI-BACKUP UNKNOWN - no repository at {}: the directory does not exist",
            missing.display()
        )
    );
    let (code, line) = health(&server, work.path(), &[]);
    assert_eq!(code, 3, "{line}");
    assert!(
        line.starts_with("OPSI-BACKUP UNKNOWN - ") && line.contains("has no config.json"),
        "{line}"
    );
    // No repository given, and wrong arguments: UNKNOWN too (plugin conventions).
    let (code, out, _) = run(bin(server.root()).arg("health"));
    assert_eq!(code, 3);
    assert!(
        out.starts_with("OPSI-BACKUP UNKNOWN - no repository given"),
        "{out}"
    );
    let (code, _, err) =
        run(repo_bin(server.root(), &missing).args(["health", "--warning", "soon"]));
    assert_eq!(code, 3, "{err}");
    let (code, _, _) = run(repo_bin(server.root(), &missing).args(["health", "--no-such-option"]));
    assert_eq!(code, 3);
    // Another command's usage error stays 2, even with `health` among its arguments.
    let (code, _, _) = run(repo_bin(server.root(), &missing).args(["list", "health", "--bad"]));
    assert_eq!(code, 2);

    let repo = repository(&server, work.path(), &[1]);
    let index = repo.join("index.sqlite");
    let mut bytes = std::fs::read(&index).unwrap();
    bytes[..100].fill(0);
    std::fs::write(&index, bytes).unwrap();
    let (code, line) = health(&server, &repo, &[]);
    assert_eq!(code, 2, "{line}");
    assert!(
        line.starts_with("OPSI-BACKUP CRITICAL - the repository index ")
            && line.contains("rebuild-index"),
        "{line}"
    );
}

#[test]
fn detailed_exit_codes_for_repository_commands_and_the_originals_codes_for_theirs() {
    let server = FakeServer::new(3, false);
    let work = tempfile::tempdir().unwrap();
    let missing = work.path().join("missing");
    let detailed = |repo: &Path| {
        let mut c = repo_bin(server.root(), repo);
        c.env("OPSI_BACKUP_EXIT_CODES", "detailed");
        c
    };
    // No repository: 10 from the repository's commands by default, 1 when asked for the
    // original's codes; the original's commands give 1 unless asked for detail.
    assert_eq!(run(detailed(&missing).arg("snapshots")).0, 10);
    assert_eq!(
        run(repo_bin(server.root(), &missing).arg("snapshots")).0,
        10
    );
    assert_eq!(
        run(repo_bin(server.root(), &missing).args(["--exit-codes", "compatible", "stats"])).0,
        1
    );
    assert_eq!(run(repo_bin(server.root(), &missing).args(["verify"])).0, 1);
    assert_eq!(
        run(repo_bin(server.root(), &missing).args(["--exit-codes", "detailed", "verify"])).0,
        10
    );

    // Lock not obtained: 11.
    let repo = repository(&server, work.path(), &[2, 1]);
    let mut holder = common::hold_lock(&repo);
    let (code, _, err) =
        run(detailed(&repo).args(["--lock-wait", "0", "forget", "--keep-last", "1"]));
    assert_eq!(code, 11, "{err}");
    let (code, _, err) = run(repo_bin(server.root(), &repo).args([
        "--lock-wait",
        "0",
        "forget",
        "--keep-last",
        "1",
    ]));
    assert_eq!(code, 11, "{err}");
    let (code, _, err) = run(repo_bin(server.root(), &repo).args([
        "--exit-codes",
        "compatible",
        "--lock-wait",
        "0",
        "forget",
        "--keep-last",
        "1",
    ]));
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = run(repo_bin(server.root(), &repo).args(["--lock-wait", "0", "create"]));
    assert_eq!(code, 1, "{err}");
    drop(holder.stdin.take());
    holder.wait().unwrap();

    // Damage found: 3 from verify, restore and a damaged index.
    let pack = common::largest_pack(&repo);
    let good = std::fs::read(&pack).unwrap();
    let mut bad = good.clone();
    bad[good.len() / 4] ^= 0xff;
    std::fs::write(&pack, &bad).unwrap();
    let (code, out, _) = run(detailed(&repo).arg("verify"));
    assert_eq!((code, out.trim()), (3, "Verification failed"));
    assert_eq!(run(repo_bin(server.root(), &repo).arg("verify")).0, 1);
    let target = tempfile::tempdir().unwrap();
    let (code, _, err) = run(repo_bin(target.path(), &repo)
        .env("OPSI_BACKUP_EXIT_CODES", "detailed")
        .args(["restore", "latest", "--configuration", "--backends", "all"]));
    assert_eq!(code, 3, "{err}");
    std::fs::write(&pack, &good).unwrap();
    let index = repo.join("index.sqlite");
    let intact = std::fs::read(&index).unwrap();
    let mut bytes = intact.clone();
    bytes[..100].fill(0);
    std::fs::write(&index, bytes).unwrap();
    let (code, _, err) = run(detailed(&repo).arg("snapshots"));
    assert_eq!(code, 3, "{err}");
    std::fs::write(&index, intact).unwrap();

    // Other errors stay 1, usage 2, success 0.
    let (code, _, err) = run(detailed(&repo)
        .args(["export", "0123456789"])
        .arg(work.path()));
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        run(detailed(&repo).args(["snapshots", "--no-such-option"])).0,
        2
    );
    assert_eq!(run(detailed(&repo).arg("snapshots")).0, 0);

    // Without a repository the original's codes, whatever was asked: a damaged archive is 1.
    let a = work.path().join("a.tar");
    let mut bytes = std::fs::read(&a).unwrap();
    let at = bytes.windows(9).position(|w| w == b"[DEVICE_0").unwrap();
    bytes[at + 2] ^= 0x20;
    std::fs::write(&a, bytes).unwrap();
    let (code, out, _) = run(bin(server.root())
        .env("OPSI_BACKUP_EXIT_CODES", "detailed")
        .arg("verify")
        .arg(&a));
    assert_eq!((code, out.trim()), (1, "Verification failed"));
    let (code, _, _) = run(bin(server.root())
        .env("OPSI_BACKUP_EXIT_CODES", "detailed")
        .arg("list")
        .arg(work.path().join("missing.tar")));
    assert_eq!(code, 1);
}

/// Each kind of snapshot has its own check: a stored opsiconfd backup never stands in for the
/// nightly opsi-backup snapshot, nor the other way round.
#[test]
fn the_age_is_of_the_snapshots_of_the_kind_watched() {
    let server = FakeServer::new(2, false);
    let work = tempfile::tempdir().unwrap();
    let repo = repository(&server, work.path(), &[]);
    let backup = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/opsiconfd/opsiconfd-backup.msgpack.lz4");
    ok(repo_bin(server.root(), &repo).arg("import").arg(&backup));
    let (code, line) = health(&server, &repo, &ANY_SPACE);
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("no snapshot"), "{line}");
    let mut args = ANY_SPACE.to_vec();
    args.extend(["--kind", "opsiconfd"]);
    let (code, line) = health(&server, &repo, &args);
    // The fixture was written in 2023: old, but there.
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("newest opsiconfd snapshot"), "{line}");

    ok(repo_bin(server.root(), &repo).arg("create"));
    let (code, line) = health(&server, &repo, &ANY_SPACE);
    assert_eq!(code, 0, "{line}");
    assert!(line.contains("newest snapshot"), "{line}");
}
