//! No single wrong value erases the backups, and forget plans where it removes: a policy that
//! keeps nothing is refused, "newest" is one order everywhere (same-second snapshots), and
//! two forgets at once both plan under the repository lock.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::fake_server::FakeServer;
use common::{bin, ok, repo_bin, run};

/// A repository with one snapshot per entry of `stamps` (`2026-01-DD_HH-MM-SS`), imported one
/// by one from archives named like the original names them (import takes the time from it).
fn repository(server: &FakeServer, work: &Path, stamps: &[&str]) -> PathBuf {
    let repo = work.join("repo");
    ok(repo_bin(server.root(), &repo).arg("init"));
    let a = work.join("a.tar");
    ok(bin(server.root()).args(["create", "-c", "none"]).arg(&a));
    for s in stamps {
        import(server, &repo, &a, work, s);
    }
    repo
}

fn import(server: &FakeServer, repo: &Path, archive: &Path, work: &Path, stamp: &str) {
    let dir = tempfile::tempdir_in(work).unwrap();
    let p = dir.path().join(format!("opsiserver_4.3.0.28_{stamp}.tar"));
    std::fs::copy(archive, &p).unwrap();
    ok(repo_bin(server.root(), repo).arg("import").arg(&p));
}

fn ids(server: &FakeServer, repo: &Path) -> Vec<String> {
    common::snapshots(server.root(), repo)
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn policies_keeping_nothing_are_refused_and_remove_nothing() {
    let server = FakeServer::new(5, false);
    let work = tempfile::tempdir().unwrap();
    let repo = repository(
        &server,
        work.path(),
        &["2026-01-01_03-00-00", "2026-01-02_03-00-00"],
    );
    for args in [
        vec!["--keep-last", "0"],
        vec!["--keep-daily", "0", "--keep-weekly", "0"],
        vec!["--keep-last", "0", "--prune"],
    ] {
        let (code, out, err) = run(repo_bin(server.root(), &repo).arg("forget").args(&args));
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(err.contains("keeps nothing"), "{args:?}: {err}");
        assert_eq!(ids(&server, &repo).len(), 2, "{args:?} removed snapshots");
    }
    // The same value in the settings file.
    let settings = server.root().join("etc/opsi/opsi-backup.toml");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    std::fs::write(&settings, "[retention]\nkeep_daily = 0\n").unwrap();
    let (code, out, err) = run(repo_bin(server.root(), &repo).arg("forget"));
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("keeps nothing"), "{err}");
    assert_eq!(ids(&server, &repo).len(), 2);
    // Named ids still remove everything, on purpose.
    let all = ids(&server, &repo);
    ok(repo_bin(server.root(), &repo).arg("forget").args(&all));
    assert!(ids(&server, &repo).is_empty());
}

/// Snapshots of the same second: `forget --keep-last 1` keeps the one `latest` names (the
/// last of the list), whatever their ids.
#[test]
fn keep_last_keeps_the_snapshot_latest_names() {
    let server = FakeServer::new(5, false);
    let work = tempfile::tempdir().unwrap();
    let stamp = "2026-01-01_03-00-00";
    let repo = repository(&server, work.path(), &[stamp]);
    let a = work.path().join("a.tar");
    // Until the newest snapshot is not the one with the greatest id (an order by time and id
    // alone picks the wrong one then); each try is a coin toss, 12 tries are plenty.
    for _ in 0..12 {
        import(&server, &repo, &a, work.path(), stamp);
        let list = ids(&server, &repo);
        if list.last() != list.iter().max() {
            break;
        }
    }
    let list = ids(&server, &repo);
    assert_ne!(list.last(), list.iter().max(), "no tie with a smaller id");
    let latest = list.last().unwrap().clone();
    ok(repo_bin(server.root(), &repo).args(["forget", "--keep-last", "1"]));
    assert_eq!(ids(&server, &repo), vec![latest]);
}

fn wait_for_stderr(path: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(what) {
            return;
        }
        assert!(Instant::now() < deadline, "never said {what:?}: {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Two `forget --prune` started while the repository is locked: both wait, then each plans
/// on what is there when it gets the lock, so the second removes nothing and fails on nothing.
#[test]
fn concurrent_forgets_plan_under_the_lock() {
    let server = FakeServer::new(5, false);
    let work = tempfile::tempdir().unwrap();
    let repo = repository(
        &server,
        work.path(),
        &[
            "2026-01-01_03-00-00",
            "2026-01-02_03-00-00",
            "2026-01-03_03-00-00",
            "2026-01-04_03-00-00",
        ],
    );
    let newest = ids(&server, &repo).last().unwrap().clone();
    let mut holder = common::hold_lock(&repo);
    let mut forgets = Vec::new();
    for n in 0..2 {
        let err = work.path().join(format!("forget-{n}.err"));
        let child = repo_bin(server.root(), &repo)
            .args(["forget", "--keep-last", "1", "--prune"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        wait_for_stderr(&err, "waiting");
        forgets.push((child, err));
    }
    drop(holder.stdin.take());
    holder.wait().unwrap();
    for (mut child, err) in forgets {
        let code = child.wait().unwrap().code();
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let err = std::fs::read_to_string(err).unwrap();
        assert_eq!(code, Some(0), "{out}{err}");
    }
    assert_eq!(ids(&server, &repo), vec![newest]);
}

/// A held lock no longer makes a cron job wait forever: `--lock-wait` bounds the wait, and
/// the error says what to do.
#[test]
fn lock_wait_gives_up_with_a_clear_error() {
    let server = FakeServer::new(5, false);
    let work = tempfile::tempdir().unwrap();
    let repo = repository(&server, work.path(), &["2026-01-01_03-00-00"]);
    let mut holder = common::hold_lock(&repo);
    let start = Instant::now();
    let mut child = repo_bin(server.root(), &repo)
        .args(["--lock-wait", "1", "forget", "--keep-last", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if start.elapsed() > Duration::from_secs(30) {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(holder.stdin.take());
    holder.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    // 11: the repository's commands tell a lock not obtained apart (README, "Exit codes").
    assert_eq!(code, Some(11), "still waiting after 30 s: {err}");
    assert!(
        err.contains("waiting up to 1 s to remove snapshots") && err.contains("--lock-wait"),
        "{err}"
    );
}
