//! Kill-between-steps test of the commit protocol (spec: `store-format/README.md`, sections
//! "Crash points" and "What a crash leaves behind"). The test re-runs its own binary as a child
//! that writes a snapshot with `OPSI_BACKUP_CRASH_AT` set, so the child aborts at that point;
//! the parent then checks that every committed snapshot restores and verifies, and that the
//! repository keeps working. Needs `--features crash-points` (ignored without it).

mod common;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;

use opsi_backup::member::Member;
use opsi_backup::sink::MemberSink;
use opsi_backup::store::{ChunkerParams, Repository, SnapshotMeta};
use opsi_backup::Result;

const REPO_ENV: &str = "OPSI_BACKUP_TEST_CRASH_REPO";

/// Half text-like, half noise: some groups compress, some do not.
fn data(n: usize, seed: u64) -> Vec<u8> {
    let text = b"INSERT INTO t VALUES (1,'abc'),";
    let mut x = seed | 1;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if (i / 100_000) % 2 == 0 {
                text[(x % 31) as usize]
            } else {
                (x >> 24) as u8
            }
        })
        .collect()
}

fn members(seed: u64) -> Vec<(Member, Vec<u8>)> {
    let file = common::file_member;
    vec![
        file(
            "CONTENT/BACKENDS/FILE/file/pckeys",
            b"pc1.example.org:0123456789abcdef\n".to_vec(),
        ),
        file(
            "CONTENT/BACKENDS/MYSQL/mysql/database.sql",
            data(1_500_000, seed),
        ),
        (Member::control("CONTROL/checksums", 3), b"x y".to_vec()),
    ]
}

fn meta(time: i64) -> SnapshotMeta {
    SnapshotMeta {
        time,
        host: "srv".into(),
        backends: vec!["mysql".into()],
        sysinfo: vec![],
        source: "create".into(),
    }
}

fn write(repo: &Repository, time: i64, seed: u64) -> Result<String> {
    let mut w = repo.begin_snapshot(meta(time))?;
    for (m, d) in members(seed) {
        w.add(&m, &mut &d[..])?;
    }
    Ok(w.commit()?.id)
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

/// Replays and verifies every snapshot; returns how many there are.
fn check_all(repo: &Repository) -> usize {
    let snaps = repo.snapshots().unwrap();
    for s in &snaps {
        let mut c = Collect::default();
        repo.replay(&s.id, &mut c).unwrap();
        let expected = members(if s.time == 1 { 1 } else { 2 });
        assert_eq!(c.0, expected);
    }
    let report = repo.verify(None).unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    snaps.len()
}

/// The child: writes one snapshot into the repository the parent named. Does nothing when run
/// on its own.
#[test]
#[ignore = "run by crash_at_every_point"]
fn crash_child() {
    let Some(root) = std::env::var_os(REPO_ENV) else {
        return;
    };
    let repo = Repository::open(Path::new(&root)).unwrap();
    write(&repo, 2, 2).unwrap();
}

#[test]
#[cfg_attr(
    not(feature = "crash-points"),
    ignore = "needs --features crash-points"
)]
fn crash_at_every_point() {
    let points = [
        ("group-appended", false),
        ("commit-begin", false),
        ("pack-written", false),
        ("pack-synced", false),
        ("pack-renamed", false),
        ("pack-indexed", false),
        ("snapshot-written", false),
        ("snapshot-synced", false),
        ("snapshot-renamed", true),
        ("index-packs-inserted", true),
        ("index-before-commit", true),
        ("index-committed", true),
    ];
    for (point, survives) in points {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        // Small packs and groups: the snapshot spans several packs.
        let params = ChunkerParams {
            pack_size: 512 * 1024,
            group_size: 64 * 1024,
            ..ChunkerParams::default()
        };
        let repo = Repository::init_with(&root, params).unwrap();
        let base = write(&repo, 1, 1).unwrap();
        drop(repo);

        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(REPO_ENV, &root)
            .env("OPSI_BACKUP_CRASH_AT", point)
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            Some(6),
            "{point}: the child did not abort there: {}",
            String::from_utf8_lossy(&out.stdout)
        );

        let repo = Repository::open(&root).unwrap();
        assert_eq!(
            std::fs::read_dir(root.join("tmp")).unwrap().count(),
            0,
            "{point}: tmp/ not cleaned"
        );
        let n = check_all(&repo);
        assert_eq!(n, if survives { 2 } else { 1 }, "{point}");
        assert_eq!(repo.snapshots().unwrap()[0].id, base);

        // The repository keeps working; packs the crashed writer had finished are reused.
        let id = write(&repo, 3, 2).unwrap();
        let added = repo.resolve(&id).unwrap().added;
        let early = [
            "group-appended",
            "commit-begin",
            "pack-written",
            "pack-synced",
        ];
        if !early.contains(&point) {
            assert!(
                added < 700_000,
                "{point}: the third snapshot added {added} bytes"
            );
        }
        if survives {
            assert!(
                added < 50_000,
                "{point}: the third snapshot added {added} bytes"
            );
        }
        assert_eq!(check_all(&repo), n + 1, "{point}");
    }
}
