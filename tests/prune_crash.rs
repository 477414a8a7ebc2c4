//! Kill-between-steps test of forget and prune (spec: `store-format/README.md`, section
//! "Forgetting and pruning"). The test re-runs its own binary as a child that forgets or prunes
//! with `OPSI_BACKUP_CRASH_AT` set, so the child aborts at that step; the parent then checks
//! that every remaining snapshot restores byte for byte and verifies, and that a rerun
//! finishes the job and ends where an uninterrupted run ends. Needs `--features crash-points`
//! (ignored without it).

mod common;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;

use common::file_member as file;
use opsi_backup::member::Member;
use opsi_backup::sink::MemberSink;
use opsi_backup::store::{ChunkerParams, PruneOptions, PruneReport, Repository, SnapshotMeta};
use opsi_backup::Result;

const REPO_ENV: &str = "OPSI_BACKUP_TEST_PRUNE_REPO";
const ACTION_ENV: &str = "OPSI_BACKUP_TEST_PRUNE_ACTION";

/// Half text-like (compresses), half noise (stored plain).
fn data(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if (i / 70_000) % 2 == 0 {
                b"INSERT INTO t VALUES (1,'abc'),"[(x % 31) as usize]
            } else {
                (x >> 24) as u8
            }
        })
        .collect()
}

/// Night `n`: a file shared by all nights and one of its own.
fn members(n: u64) -> Vec<(Member, Vec<u8>)> {
    vec![
        file("CONTENT/shared", data(600_000, 100)),
        file(
            "CONTENT/own",
            data(if n == 1 { 1_200_000 } else { 500_000 }, n),
        ),
        (Member::control("CONTROL/checksums", 3), b"x y".to_vec()),
    ]
}

fn write(repo: &Repository, n: u64) -> String {
    write_from(repo, n, members, false)
}

/// Night `n` of `members`, compressed against the previous night when `delta`.
fn write_from(
    repo: &Repository,
    n: u64,
    members: fn(u64) -> Vec<(Member, Vec<u8>)>,
    delta: bool,
) -> String {
    let mut w = repo
        .begin_snapshot(SnapshotMeta {
            time: n as i64,
            host: "srv".into(),
            backends: vec![],
            sysinfo: vec![],
            source: "create".into(),
        })
        .unwrap();
    if delta {
        w.take_parent("srv", |_, _| Ok(())).unwrap();
    }
    for (m, d) in members(n) {
        w.add(&m, &mut &d[..]).unwrap();
    }
    w.commit().unwrap().id
}

#[derive(Default)]
struct Collect(Vec<(Member, Vec<u8>)>);

impl MemberSink for Collect {
    fn add(&mut self, m: &Member, content: &mut dyn Read) -> Result<()> {
        let mut b = Vec::new();
        content.read_to_end(&mut b).unwrap();
        self.0.push((m.clone(), b));
        Ok(())
    }
}

/// Every snapshot restores as written and the repository verifies; returns their times.
fn check_all(repo: &Repository) -> Vec<i64> {
    check_all_of(repo, members)
}

/// `check_all` for snapshots written from `members`.
fn check_all_of(repo: &Repository, members: fn(u64) -> Vec<(Member, Vec<u8>)>) -> Vec<i64> {
    let snaps = repo.snapshots().unwrap();
    for s in &snaps {
        let mut c = Collect::default();
        repo.replay(&s.id, &mut c).unwrap();
        assert!(c.0 == members(s.time as u64), "snapshot {} differs", s.time);
    }
    let report = repo.verify(None).unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    snaps.iter().map(|s| s.time).collect()
}

const OPTS: PruneOptions = PruneOptions {
    dry_run: false,
    repack_threshold: 1.0,
};

/// Three nights, night 1 forgotten unless `forget` is false. Returns the repository and the
/// id of night 1.
fn setup(root: &Path, forget: bool) -> String {
    let params = ChunkerParams {
        pack_size: 256 * 1024,
        group_size: 32 * 1024,
        ..ChunkerParams::default()
    };
    let repo = Repository::init_with(root, params).unwrap();
    let first = write(&repo, 1);
    write(&repo, 2);
    write(&repo, 3);
    if forget {
        repo.forget(std::slice::from_ref(&first)).unwrap();
    }
    first
}

fn disk(root: &Path) -> u64 {
    walkdir::WalkDir::new(root.join("packs"))
        .into_iter()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Night `n` of the delta scenario: one file changed at the same few places every night, so
/// that each night's changed chunks are stored in delta groups against the previous night's
/// and are used by no later night.
fn changing_members(n: u64) -> Vec<(Member, Vec<u8>)> {
    let mut d = data(900_000, 7);
    for p in (0..d.len() - 8).step_by(45_000) {
        d[p..p + 8].copy_from_slice(&(n * 7919 + p as u64).to_le_bytes());
    }
    vec![
        file("CONTENT/changing", d),
        (Member::control("CONTROL/checksums", 3), b"x y".to_vec()),
    ]
}

/// Four nights with delta groups; nights 1 and 2 forgotten. Night 2's delta groups are then
/// wholly unused and so are their references (night 1's versions of the changed chunks).
fn setup_delta(root: &Path) {
    let params = ChunkerParams {
        pack_size: 128 * 1024,
        group_size: 32 * 1024,
        ..ChunkerParams::default()
    };
    let repo = Repository::init_with(root, params).unwrap();
    let ids: Vec<String> = (1..=4)
        .map(|n| write_from(&repo, n, changing_members, true))
        .collect();
    let conn = rusqlite::Connection::open(root.join("index.sqlite")).unwrap();
    let deltas: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM groups WHERE flags & 2 != 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(deltas > 2, "the scenario has delta groups: {deltas}");
    repo.forget(&ids[..2]).unwrap();
}

/// Prune interrupted at each step in a repository with delta groups: after recovery, `verify`
/// is clean (an old pack holding a delta group whose references' pack is already unlinked is
/// data no snapshot needs, not damage), and a rerun ends where an uninterrupted prune ends.
#[test]
#[cfg_attr(
    not(feature = "crash-points"),
    ignore = "needs --features crash-points"
)]
fn crash_at_every_step_with_delta_groups() {
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean");
    setup_delta(&clean);
    let repo = Repository::open(&clean).unwrap();
    let reference = repo.prune(OPTS).unwrap();
    assert!(
        reference.packs_deleted + reference.packs_repacked > 1,
        "{reference:?}"
    );
    assert_eq!(check_all_of(&repo, changing_members), vec![3, 4]);
    drop(repo);
    for point in [
        "prune-planned",
        "pack-renamed",
        "prune-repacked",
        "prune-index-before-commit",
        "prune-index-committed",
        "prune-pack-removed",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        setup_delta(&root);
        run_child(&root, "prune", point);
        let repo = Repository::open(&root).unwrap();
        let report = repo.verify(None).unwrap();
        assert!(report.is_ok(), "{point}: {:#?}", report.problems);
        assert_eq!(check_all_of(&repo, changing_members), vec![3, 4], "{point}");
        repo.prune(OPTS).unwrap();
        assert_eq!(check_all_of(&repo, changing_members), vec![3, 4], "{point}");
        assert!(nothing_left(&repo.prune(OPTS).unwrap()), "{point}");
        assert_eq!(disk(&root), reference.bytes_after, "{point}");
    }
}

/// The child: forgets or prunes in the repository the parent named. Does nothing on its own.
#[test]
#[ignore = "run by crash_at_every_step"]
fn prune_child() {
    let Some(root) = std::env::var_os(REPO_ENV) else {
        return;
    };
    let repo = Repository::open(Path::new(&root)).unwrap();
    match std::env::var(ACTION_ENV).unwrap().as_str() {
        "prune" => {
            repo.prune(OPTS).unwrap();
        }
        id => {
            repo.forget(&[id.to_string()]).unwrap();
        }
    }
}

fn run_child(root: &Path, action: &str, point: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "prune_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(REPO_ENV, root)
        .env(ACTION_ENV, action)
        .env("OPSI_BACKUP_CRASH_AT", point)
        .output()
        .unwrap();
    assert_eq!(
        out.status.signal(),
        Some(6),
        "{point}: the child did not abort there: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn nothing_left(r: &PruneReport) -> bool {
    r.packs_deleted == 0 && r.packs_repacked == 0 && r.chunks_deleted == 0
}

#[test]
#[cfg_attr(
    not(feature = "crash-points"),
    ignore = "needs --features crash-points"
)]
fn crash_at_every_step() {
    // The uninterrupted run, for comparison.
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean");
    setup(&clean, true);
    let repo = Repository::open(&clean).unwrap();
    let reference = repo.prune(OPTS).unwrap();
    assert!(
        reference.packs_deleted > 0 && reference.packs_repacked > 0,
        "the scenario both deletes and rewrites packs: {reference:?}"
    );
    assert_eq!(check_all(&repo), vec![2, 3]);
    assert_eq!(disk(&clean), reference.bytes_after);
    drop(repo);

    let points = [
        "prune-planned",
        "pack-written",
        "pack-synced",
        "pack-renamed",
        "prune-repacked",
        "prune-index-repointed",
        "prune-index-before-commit",
        "prune-index-committed",
        "prune-pack-removed",
    ];
    for point in points {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        setup(&root, true);
        run_child(&root, "prune", point);
        let repo = Repository::open(&root).unwrap();
        assert_eq!(check_all(&repo), vec![2, 3], "{point}");
        let r = repo.prune(OPTS).unwrap();
        assert_eq!(check_all(&repo), vec![2, 3], "{point}");
        assert!(nothing_left(&repo.prune(OPTS).unwrap()), "{point}: {r:?}");
        assert_eq!(
            disk(&root),
            reference.bytes_after,
            "{point}: the rerun does not end where an uninterrupted prune ends"
        );
        assert_eq!(std::fs::read_dir(root.join("tmp")).unwrap().count(), 0);
    }

    for (point, forgotten) in [
        ("forget-index-before-commit", false),
        // The index rows are gone but the file is not: the next exclusive open indexes it
        // again, as for an interrupted commit. Running forget again removes it.
        ("forget-index-committed", false),
        ("forget-file-removed", true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        let first = setup(&root, false);
        run_child(&root, &first, point);
        let repo = Repository::open(&root).unwrap();
        let times = check_all(&repo);
        assert_eq!(
            times,
            if forgotten { vec![2, 3] } else { vec![1, 2, 3] },
            "{point}"
        );
        if !forgotten {
            repo.forget(std::slice::from_ref(&first)).unwrap();
        }
        repo.prune(OPTS).unwrap();
        assert_eq!(check_all(&repo), vec![2, 3], "{point}");
        assert_eq!(disk(&root), reference.bytes_after, "{point}");
    }
}
