//! Delta groups (spec: "Delta groups"): a night's changed chunks compressed against their
//! older versions in the parent snapshot, and everything that must keep reading them.

use std::fs;
use std::sync::Arc;

use super::tests::{file, init_as_version, meta, noise, pack_files, replay_all, sql_text, store};
use super::*;
use crate::error::Error;
use crate::member::Member;
use crate::sink::MemberSink;

const DUMP: &str = "CONTENT/BACKENDS/MYSQL/mysql/database.sql";

/// `text` with the time of every `every`-th row changed, and a row inserted in the middle.
fn night(text: &[u8], every: usize) -> Vec<u8> {
    let s = String::from_utf8(text.to_vec()).unwrap();
    let mut out = String::with_capacity(s.len() + 100);
    for (i, part) in s.split("03:00:00").enumerate() {
        if i > 0 {
            out.push_str(if i % every == 0 {
                "04:17:23"
            } else {
                "03:00:00"
            });
        }
        out.push_str(part);
    }
    let mid = out.len() / 2;
    let at = mid + out[mid..].find("),(").unwrap() + 2;
    out.insert_str(at, "('client99999.opsi.local','OpsiClient','new',NULL),");
    out.into_bytes()
}

/// Stores `members` with the newest snapshot of host "server" as parent.
fn store_with_parent(repo: &Repository, members: &[(Member, Vec<u8>)]) -> SnapshotInfo {
    let parent = repo.parent("server").unwrap().expect("a parent snapshot");
    let mut w = repo.begin_snapshot(meta("server")).unwrap();
    w.set_parent(Arc::new(parent)).unwrap();
    for (m, d) in members {
        w.add(m, &mut &d[..]).unwrap();
    }
    w.commit().unwrap()
}

fn delta_groups(root: &std::path::Path) -> i64 {
    let conn = index::connect(&root.join("index.sqlite")).unwrap();
    conn.query_row("SELECT COUNT(*) FROM group_refs", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn changed_rows_are_stored_against_the_parent() {
    let dir = tempfile::tempdir().unwrap();
    let text = sql_text(60_000, 5);
    let changed = night(&text, 200);
    let ini = noise(30_000, 4);
    let first_members = [file(DUMP, &text), file("CONTENT/a.ini", &ini)];
    let mut ini2 = ini.clone();
    ini2[15_000..15_010].copy_from_slice(b"lastSeen=1");
    let night_members = [file(DUMP, &changed), file("CONTENT/a.ini", &ini2)];

    // The same night without a parent, for comparison.
    let plain = Repository::init(&dir.path().join("plain")).unwrap();
    store(&plain, &first_members);
    let without = store(&plain, &night_members);
    assert_eq!(delta_groups(&dir.path().join("plain")), 0);

    let root = dir.path().join("r");
    let repo = Repository::init(&root).unwrap();
    let first = store(&repo, &first_members);
    let second = store_with_parent(&repo, &night_members);
    assert!(delta_groups(&root) > 0);
    assert!(
        second.added * 3 < without.added,
        "with the parent {} bytes, without {}",
        second.added,
        without.added
    );
    assert_eq!(replay_all(&repo, &second.id)[0].1, changed);
    assert_eq!(replay_all(&repo, &second.id)[1].1, ini2);
    assert!(repo.verify(None).unwrap().is_ok());

    // The parent goes: its chunks that the delta groups were compressed against stay.
    repo.forget(std::slice::from_ref(&first.id)).unwrap();
    let r = repo
        .prune(PruneOptions {
            dry_run: false,
            repack_threshold: 1.0,
        })
        .unwrap();
    assert!(r.chunks_deleted > 0, "{r:?}");
    assert!(repo.verify(None).unwrap().is_ok());
    assert_eq!(replay_all(&repo, &second.id)[0].1, changed);

    // The reference lists are rebuilt from the pack trailers.
    drop(repo);
    index::remove(&root).unwrap();
    let repo = Repository::open(&root).unwrap();
    assert!(delta_groups(&root) > 0);
    assert_eq!(replay_all(&repo, &second.id)[0].1, changed);
    assert!(repo.verify(None).unwrap().is_ok());
}

/// A damaged reference chunk is reported, naming the member whose delta group needs it.
#[test]
fn a_damaged_reference_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let repo = Repository::init(&root).unwrap();
    let text = sql_text(30_000, 8);
    store(&repo, &[file(DUMP, &text)]);
    let first_packs = pack_files(&root);
    let second = store_with_parent(&repo, &[file(DUMP, &night(&text, 100))]);
    assert!(delta_groups(&root) > 0);
    // Damage the first night's pack in its middle: dump chunks, some the night's references.
    for p in &first_packs {
        let mut b = fs::read(p).unwrap();
        let mid = b.len() / 2;
        for x in &mut b[mid..mid + 64] {
            *x ^= 0x55;
        }
        fs::write(p, b).unwrap();
    }
    let mut c = super::tests::Collect::default();
    match repo.replay(&second.id, &mut c) {
        Err(Error::Corrupt(msg)) => assert!(msg.contains(DUMP), "{msg}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // verify names the night's delta groups too, as unreadable for their reference.
    let report = repo.verify(Some(&second.id)).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.to_string().contains("its reference chunk")),
        "{:?}",
        report.problems
    );
}

/// A repository of format version 2 gets no delta groups: older builds read it still.
#[test]
fn a_version_2_repository_gets_no_delta_groups() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let repo = init_as_version(&root, 2);
    let dump = sql_text(30_000, 9);
    store(&repo, &[file(DUMP, &dump)]);
    let changed = night(&dump, 100);
    let second = store_with_parent(&repo, &[file(DUMP, &changed)]);
    assert_eq!(delta_groups(&root), 0);
    assert_eq!(replay_all(&repo, &second.id)[0].1, changed);
}

/// A streamed member (a dump, stored by `add_unsized`) finds its parent's chunks by path,
/// and the pack trailer lists its delta groups' references.
#[test]
fn unsized_members_find_their_parent_too() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let repo = Repository::init(&root).unwrap();
    let text = sql_text(30_000, 10);
    store(&repo, &[file(DUMP, &text)]);
    let changed = night(&text, 100);
    let parent = repo.parent("server").unwrap().unwrap();
    let mut w = repo.begin_snapshot(meta("server")).unwrap();
    w.set_parent(Arc::new(parent)).unwrap();
    let m = file(DUMP, &[]).0;
    assert_eq!(
        w.add_unsized(m, &mut &changed[..]).unwrap(),
        changed.len() as u64
    );
    let info = w.commit().unwrap();
    let delta: Vec<_> = pack_files(&root)
        .iter()
        .flat_map(|p| pack::read_trailer_file(p).unwrap().1)
        .filter(|g| g.flags & pack::FLAG_DELTA != 0)
        .collect();
    assert!(!delta.is_empty());
    assert!(delta.iter().all(|g| !g.refs.is_empty()));
    assert_eq!(replay_all(&repo, &info.id)[0].1, changed);
}

/// Prune rewrites a delta group that is partly unused: its used chunks are read through its
/// references and stored again, readable without them.
#[test]
fn a_partly_used_delta_group_is_repacked() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let repo = Repository::init(&root).unwrap();
    let text = sql_text(60_000, 11);
    let first = store(&repo, &[file(DUMP, &text)]);
    let second_text = night(&text, 150);
    let second = store_with_parent(&repo, &[file(DUMP, &second_text)]);
    assert!(delta_groups(&root) > 0);
    // The third night undoes the second's changes in the dump's first half only.
    let half = second_text.len() / 2;
    let mut third_text = text[..half].to_vec();
    third_text.extend_from_slice(&second_text[half..]);
    let third = store(&repo, &[file(DUMP, &third_text)]);
    repo.forget(&[first.id.clone(), second.id.clone()]).unwrap();
    let r = repo
        .prune(PruneOptions {
            dry_run: false,
            repack_threshold: 1.0,
        })
        .unwrap();
    assert!(r.packs_repacked > 0, "{r:?}");
    assert!(repo.verify(None).unwrap().is_ok());
    assert_eq!(replay_all(&repo, &third.id)[0].1, third_text);
}

/// An index made by a program before delta groups (schema 3 without `group_refs`) gains the
/// table on open, and stays schema 3: such programs keep reading a version 2 repository.
#[test]
fn an_index_without_reference_lists_gains_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let repo = Repository::init(&root).unwrap();
    let info = store(&repo, &[file(DUMP, &sql_text(1000, 12))]);
    drop(repo);
    let conn = index::connect(&root.join("index.sqlite")).unwrap();
    conn.execute_batch("DROP TABLE group_refs").unwrap();
    drop(conn);
    let repo = Repository::open(&root).unwrap();
    let conn = index::connect(&root.join("index.sqlite")).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3);
    assert_eq!(delta_groups(&root), 0);
    assert_eq!(repo.snapshots().unwrap(), vec![info]);
}
