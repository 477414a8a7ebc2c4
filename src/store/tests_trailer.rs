//! Rebuilding the index of a repository with a damaged pack: every snapshot whose chunks are
//! all in a readable pack (through the second trailer copy too) is kept, the rest reported
//! exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::tests::{file, init_as_version, noise, pack_files, replay_all, sql_text, store};
use super::*;
use crate::member::Member;
use crate::store::chunker::ChunkId;

/// Snapshot ids with the members stored in them.
type Stored = Vec<(String, Vec<(Member, Vec<u8>)>)>;

/// Five snapshots over several small packs: each adds a file of its own and changes a dump.
fn five_snapshots(root: &Path) -> (Repository, Stored) {
    let params = ChunkerParams {
        group_size: 64 * 1024,
        pack_size: 256 * 1024,
        ..ChunkerParams::default()
    };
    let repo = Repository::init_with(root, params).unwrap();
    let mut all = Vec::new();
    for n in 0..5u64 {
        let members = vec![
            file("CONTENT/shared.bin", &noise(300_000, 1)),
            file(&format!("CONTENT/night{n}.bin"), &noise(200_000, 10 + n)),
            file("CONTENT/db.sql", &sql_text(2_000 + 300 * n as usize, 3)),
        ];
        let info = store(&repo, &members);
        all.push((info.id, members));
    }
    (repo, all)
}

/// Where the final trailer of the pack `bytes` lies: its body length.
fn final_body_len(bytes: &[u8]) -> usize {
    let n = bytes.len();
    u32::from_le_bytes(bytes[n - 12..n - 8].try_into().unwrap()) as usize
}

fn flip(path: &Path, at: usize) {
    let mut b = fs::read(path).unwrap();
    b[at] ^= 0x10;
    fs::write(path, b).unwrap();
}

#[test]
fn rebuild_keeps_every_snapshot_when_one_trailer_of_a_pack_is_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let (repo, snaps) = five_snapshots(&root);
    let packs = pack_files(&root);
    assert!(packs.len() >= 4, "{} packs", packs.len());
    let before = repo.snapshots().unwrap();
    // The pack holding the most chunks: the one whose loss would cost the most.
    let pack = packs
        .iter()
        .max_by_key(|p| pack::read_trailer_file(p).unwrap().1.len())
        .unwrap()
        .clone();
    let good = fs::read(&pack).unwrap();
    let (n, body) = (good.len(), final_body_len(&good));
    type Damage = Box<dyn Fn(&PathBuf)>;
    let damages: Vec<(&str, Damage)> = vec![
        ("body", Box::new(move |p| flip(p, n - 44 - body / 2))),
        ("hash", Box::new(move |p| flip(p, n - 44 + 5))),
        ("length", Box::new(move |p| flip(p, n - 12 + 1))),
        ("end magic", Box::new(move |p| flip(p, n - 3))),
        (
            "truncate -10",
            Box::new(move |p| {
                let f = fs::OpenOptions::new().write(true).open(p).unwrap();
                f.set_len((n - 10) as u64).unwrap();
            }),
        ),
    ];
    for (what, damage) in &damages {
        fs::write(&pack, &good).unwrap();
        damage(&pack);
        let report = repo.rebuild_index().unwrap();
        assert_eq!(report.snapshots, 5, "{what}: {report:?}");
        assert!(
            report.lost.is_empty() && report.skipped.is_empty(),
            "{what}: {report:?}"
        );
        assert_eq!(report.repaired.len(), 1, "{what}: {report:?}");
        assert_eq!(repo.snapshots().unwrap(), before, "{what}");
        for (id, members) in &snaps {
            assert!(
                replay_all(&repo, id) == *members,
                "{what}: snapshot {id} differs"
            );
        }
    }
}

/// Per snapshot: its metadata chunks in `lost`, and its members with chunks in `lost`.
type Expected = BTreeMap<String, (Vec<String>, Vec<(String, Vec<String>)>)>;

/// What losing the chunks `lost` costs, read from the intact index.
fn expected_loss(repo: &Repository, lost: &BTreeSet<ChunkId>) -> Expected {
    let snapshots = repo.snapshots().unwrap();
    let conn = repo.conn();
    let mut out = Expected::new();
    for s in snapshots {
        let mut members = Vec::new();
        let file = reader::read_snapshot_file(
            &conn,
            repo.storage(),
            &s.id,
            |m: crate::member::Member, chunks| {
                let gone: Vec<String> = chunks
                    .iter()
                    .filter(|c| lost.contains(*c))
                    .map(hex::encode)
                    .collect();
                if !gone.is_empty() {
                    members.push((m.path, gone));
                }
                Ok(())
            },
        )
        .unwrap();
        let meta: Vec<String> = file
            .meta_chunks
            .iter()
            .filter(|c| lost.contains(*c))
            .map(hex::encode)
            .collect();
        if !meta.is_empty() {
            members.clear();
        }
        if !meta.is_empty() || !members.is_empty() {
            out.insert(s.id, (meta, members));
        }
    }
    out
}

#[test]
fn rebuild_reports_exactly_what_a_pack_with_both_trailers_damaged_loses() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let (repo, snaps) = five_snapshots(&root);
    // A pack of the second night's file: some snapshots need it, others not.
    let packs = pack_files(&root);
    let night1 = {
        let conn = repo.conn();
        let mut ids = Vec::new();
        reader::read_snapshot_file(
            &conn,
            &crate::store::storage::LocalDir::new(&root),
            &snaps[1].0,
            |m: crate::member::Member, chunks| {
                if m.path == "CONTENT/night1.bin" {
                    ids = chunks;
                }
                Ok(())
            },
        )
        .unwrap();
        ids
    };
    // Of the packs holding it, the one whose loss costs the fewest snapshots.
    let (pack, expected) = packs
        .iter()
        .map(|p| (p.clone(), pack::read_trailer_file(p).unwrap().1))
        .filter(|(_, g)| {
            g.iter()
                .any(|g| g.chunks.iter().any(|c| night1.contains(&c.0)))
        })
        .map(|(p, groups)| {
            let lost: BTreeSet<ChunkId> = groups
                .iter()
                .flat_map(|g| g.chunks.iter().map(|c| c.0))
                .collect();
            (p, expected_loss(&repo, &lost))
        })
        .min_by_key(|(_, e)| e.len())
        .unwrap();
    assert!(!expected.is_empty(), "{expected:?}");

    // A group's data and both trailer copies damaged.
    let bytes = fs::read(&pack).unwrap();
    let (n, body) = (bytes.len(), final_body_len(&bytes));
    flip(&pack, 8 + 10);
    flip(&pack, n - 44 - body / 2);
    flip(&pack, n - 2 * 44 - body - body / 2);
    let report = repo.rebuild_index().unwrap();

    let got: Expected = report
        .lost
        .iter()
        .map(|l| {
            let members = l
                .members
                .iter()
                .map(|m| (m.path.clone(), m.chunks.clone()))
                .collect();
            (l.id.clone(), (l.meta_chunks.clone(), members))
        })
        .collect();
    assert_eq!(got, expected);
    assert_eq!(report.skipped.len(), 1, "{:?}", report.skipped);
    assert!(report.skipped[0].contains(&pack.file_stem().unwrap().to_string_lossy()[..]));
    assert_eq!(report.snapshots, 5 - expected.len() as u64);
    for l in &report.lost {
        assert_eq!(l.time, tests::meta("server").time);
    }
    let mut want_chunks: Vec<String> = expected
        .values()
        .flat_map(|(meta, members)| meta.iter().chain(members.iter().flat_map(|m| m.1.iter())))
        .cloned()
        .collect();
    want_chunks.sort();
    want_chunks.dedup();
    assert_eq!(report.lost_chunks(), want_chunks);
    // The snapshots kept are whole.
    for (id, members) in &snaps {
        if !expected.contains_key(id) {
            assert!(replay_all(&repo, id) == *members, "snapshot {id} differs");
        }
    }
}

/// The end magics of every pack of the repository at `root`.
fn end_magics(root: &Path) -> BTreeSet<Vec<u8>> {
    pack_files(root)
        .iter()
        .map(|p| {
            let b = fs::read(p).unwrap();
            b[b.len() - 8..].to_vec()
        })
        .collect()
}

/// New repositories get two trailers per pack, from the snapshot writer and from prune's
/// repacking alike; a version 3 repository keeps getting packs older programs read.
#[test]
fn packs_carry_two_trailers_from_version_4_on_only() {
    for version in [3u32, 4] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("r");
        let repo = init_as_version(&root, version);
        let small = file("CONTENT/small", &noise(20_000, 2));
        let first = store(
            &repo,
            &[file("CONTENT/big", &noise(2_000_000, 1)), small.clone()],
        );
        store(&repo, std::slice::from_ref(&small));
        repo.forget(&[first.id]).unwrap();
        let report = repo.prune(PruneOptions::default()).unwrap();
        assert!(report.packs_written > 0, "{report:?}");
        let want: &[u8] = if version == 4 {
            pack::TRAILER_MAGIC_V4
        } else {
            pack::TRAILER_MAGIC
        };
        assert_eq!(
            end_magics(&root),
            BTreeSet::from([want.to_vec()]),
            "version {version}"
        );
        assert_eq!(replay_all(&repo, "latest"), vec![small]);
    }
}
