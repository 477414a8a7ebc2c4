//! Library-level tests of the repository: round trip, dedup, damage, rebuild, leftovers,
//! permissions, concurrency.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;
use crate::error::Error;
use crate::member::{Member, MemberKind, Mtime};
use crate::sink::MemberSink;
use crate::store::storage::{pack_key, snapshot_key, LocalDir};

/// Collects replayed members with their content.
#[derive(Default)]
pub(super) struct Collect(Vec<(Member, Vec<u8>)>);

impl MemberSink for Collect {
    fn add(&mut self, m: &Member, content: &mut dyn Read) -> crate::Result<()> {
        let mut b = Vec::new();
        content
            .take(m.size)
            .read_to_end(&mut b)
            .map_err(|e| Error::io("test read", e))?;
        self.0.push((m.clone(), b));
        Ok(())
    }
}

fn member(path: &str, kind: MemberKind, size: u64) -> Member {
    Member {
        path: path.into(),
        kind,
        mode: 0o640,
        uid: 0,
        gid: 999,
        uname: "opsiconfd".into(),
        gname: "opsiadmin".into(),
        mtime: Mtime::from_unix(1_764_000_000, 250_000_000),
        size,
        raw_header: None,
        stamp: None,
        xattrs: Vec::new(),
    }
}

pub(super) fn file(path: &str, data: &[u8]) -> (Member, Vec<u8>) {
    (
        member(path, MemberKind::File, data.len() as u64),
        data.to_vec(),
    )
}

/// Deterministic pseudo-random bytes.
pub(super) fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// SQL-like text: long INSERT lines of numbered rows.
pub(super) fn sql_text(rows: usize, seed: u64) -> Vec<u8> {
    let words = noise(rows * 4, seed);
    let mut s = String::from("-- MySQL dump\nDROP TABLE IF EXISTS `HOST`;\n");
    for (i, w) in words.chunks(4).enumerate() {
        if i % 500 == 0 {
            s.push_str(";\nINSERT INTO `HOST` VALUES ");
        } else {
            s.push(',');
        }
        s.push_str(&format!(
            "('client{:05}.opsi.local','OpsiClient','desc {}',NULL,'{:02x}:{:02x}:{:02x}:{:02x}:00:01','2026-11-{:02} 03:00:00')",
            i, w[0], w[0], w[1], w[2], w[3], 1 + i % 28
        ));
    }
    s.push_str(";\n");
    s.into_bytes()
}

pub(crate) fn meta(host: &str) -> SnapshotMeta {
    SnapshotMeta {
        time: 1_764_000_000,
        host: host.into(),
        backends: vec!["file".into(), "mysql".into()],
        sysinfo: vec![
            ("hostname".into(), host.into()),
            ("sysVersion".into(), "(12,)".into()),
        ],
        source: "create".into(),
    }
}

pub(super) fn store(repo: &Repository, members: &[(Member, Vec<u8>)]) -> SnapshotInfo {
    let mut w = repo.begin_snapshot(meta("server")).unwrap();
    for (m, d) in members {
        w.add(m, &mut &d[..]).unwrap();
    }
    w.commit().unwrap()
}

pub(super) fn replay_all(repo: &Repository, id: &str) -> Vec<(Member, Vec<u8>)> {
    let mut c = Collect::default();
    repo.replay(id, &mut c).unwrap();
    c.0
}

fn sample() -> Vec<(Member, Vec<u8>)> {
    let mut v = vec![
        (member("CONTENT/CONF", MemberKind::Dir, 0), vec![]),
        file("CONTENT/CONF/empty", b""),
        file("CONTENT/CONF/one", b"x"),
        (
            member("CONTENT/CONF/link", MemberKind::Symlink("one".into()), 0),
            vec![],
        ),
        (
            member(
                "CONTENT/CONF/hard",
                MemberKind::Hardlink("CONTENT/CONF/one".into()),
                0,
            ),
            vec![],
        ),
        file("CONTENT/BACKENDS/FILE/file/random.bin", &noise(3 << 20, 7)),
        file(
            "CONTENT/BACKENDS/MYSQL/mysql/database.sql",
            &sql_text(20_000, 3),
        ),
    ];
    v.push((
        Member::control("CONTROL/checksums", 11),
        b"abc CONTENT\n".to_vec()[..11].to_vec(),
    ));
    v.push((
        Member::control("CONTROL/sysinfo", 15),
        b"hostname: srv1\n".to_vec(),
    ));
    v
}

/// A new repository at `root`, made by this build (version `FORMAT_VERSION`), then marked as
/// format `version`, as an older build would have made it.
pub(super) fn init_as_version(root: &Path, version: u32) -> Repository {
    drop(Repository::init(root).unwrap());
    let cfg = root.join("config.json");
    let text = fs::read_to_string(&cfg).unwrap();
    assert!(
        text.contains(&format!("\"version\": {}", config::FORMAT_VERSION)),
        "{text}"
    );
    let mut config = config::Config::load(&LocalDir::new(root)).unwrap();
    config.version = version;
    config.save(&LocalDir::new(root)).unwrap();
    Repository::open(root).unwrap()
}

pub(super) fn pack_files(root: &Path) -> Vec<std::path::PathBuf> {
    rebuild::list_packs(&LocalDir::new(root))
        .unwrap()
        .iter()
        .map(|n| root.join(pack_key(n)))
        .collect()
}

#[test]
fn members_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(&dir.path().join("repo")).unwrap();
    let members = sample();
    let mut w = repo.begin_snapshot(meta("server")).unwrap();
    for (m, d) in &members {
        w.add(m, &mut &d[..]).unwrap();
    }
    let dump = sql_text(5_000, 9);
    let mut unsized_member = member(
        "CONTENT/BACKENDS/MYSQL/mysql/other.sql",
        MemberKind::File,
        0,
    );
    assert_eq!(
        w.add_unsized(unsized_member.clone(), &mut &dump[..])
            .unwrap(),
        dump.len() as u64
    );
    let info = w.commit().unwrap();
    unsized_member.size = dump.len() as u64;
    let mut expected = members.clone();
    expected.push((unsized_member, dump));

    assert_eq!(info.members, expected.len() as u64);
    assert_eq!(info.size, expected.iter().map(|(m, _)| m.size).sum::<u64>());
    assert_eq!(info.host, "server");
    assert_eq!(
        info.sysinfo,
        meta("x")
            .sysinfo
            .iter()
            .map(|(k, v)| (
                k.clone(),
                if k == "hostname" {
                    "server".into()
                } else {
                    v.clone()
                }
            ))
            .collect::<Vec<_>>()
    );
    assert_eq!(replay_all(&repo, &info.id), expected);
    let metas: Vec<Member> = expected.iter().map(|(m, _)| m.clone()).collect();
    assert_eq!(repo.members(&info.id).unwrap(), metas);
    assert!(repo.verify(None).unwrap().is_ok());

    // The same from a freshly opened repository.
    drop(repo);
    let repo = Repository::open(&dir.path().join("repo")).unwrap();
    assert_eq!(replay_all(&repo, "latest"), expected);
}

#[test]
fn wrong_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(&dir.path().join("r")).unwrap();
    let mut w = repo.begin_snapshot(meta("s")).unwrap();
    let m = member("CONTENT/x", MemberKind::File, 10);
    assert!(matches!(
        w.add(&m, &mut &b"short"[..]),
        Err(Error::Invalid(_))
    ));
}

#[test]
fn identical_snapshot_adds_almost_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(&dir.path().join("r")).unwrap();
    let members = sample();
    let first = store(&repo, &members);
    let second = store(&repo, &members);
    assert!(first.added > 1 << 20, "first added {}", first.added);
    // Only the snapshot file itself: its header and the ids of its metadata chunks, which
    // are the first snapshot's.
    assert!(
        second.added < 1024,
        "second added {} of {}",
        second.added,
        second.size
    );
    assert_eq!(repo.snapshots().unwrap().len(), 2);
    let conn = index::connect(&dir.path().join("r").join("index.sqlite")).unwrap();
    let meta_rows =
        |id: &str| index::meta_chunk_rows(&conn, index::snapshot_row(&conn, id).unwrap()).unwrap();
    assert!(!meta_rows(&first.id).is_empty());
    assert_eq!(meta_rows(&first.id), meta_rows(&second.id));
}

/// A writer of many chunks forgets its own once their packs are indexed (memory bounded on a
/// first backup of any size), yet still finds them to deduplicate, and the commit still
/// indexes every chunk of the snapshot.
#[test]
fn a_writer_forgets_its_indexed_chunks_and_still_deduplicates() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let params = ChunkerParams {
        pack_size: 256 * 1024,
        group_size: 64 * 1024,
        ..ChunkerParams::default()
    };
    let repo = Repository::init_with(&root, params).unwrap();
    let data = noise(3 << 20, 21);
    let mut w = repo
        .begin_snapshot(crate::store::tests::meta("server"))
        .unwrap();
    w.remember_at_most(40);
    let (m, _) = file("CONTENT/a", &data);
    w.add(&m, &mut &data[..]).unwrap();
    assert!(
        w.remembered() < 100,
        "{} chunks remembered after ~380 were stored",
        w.remembered()
    );
    // The same bytes again: every chunk is found in the index, nothing is stored twice.
    let (m2, _) = file("CONTENT/b", &data);
    w.add(&m2, &mut &data[..]).unwrap();
    let info = w.commit().unwrap();
    let stored: u64 = walkdir::WalkDir::new(root.join("packs"))
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(
        stored < data.len() as u64 + (256 << 10),
        "{stored} bytes of packs for two copies of {} bytes",
        data.len()
    );
    let mut back = Collect::default();
    repo.replay(&info.id, &mut back).unwrap();
    assert_eq!(back.0.len(), 2);
    assert!(back.0.iter().all(|(_, b)| *b == data));
    assert!(repo.verify(None).unwrap().is_ok());
}

/// The commit indexes a snapshot from its file, taking the metadata chunks the writer kept
/// (`FRESH_META_BYTES`) from memory and reading the others back from the packs: all, some or
/// none kept, the index holds the same lists, and the snapshot reads back whole.
#[test]
fn the_commit_indexes_the_same_lists_whatever_metadata_it_kept() {
    let members = many_members(3000);
    let lists = |keep: usize| {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(&dir.path().join("r")).unwrap();
        let mut w = repo.begin_snapshot(meta("server")).unwrap();
        w.keep_metadata_at_most(keep);
        for (m, d) in &members {
            w.add(m, &mut &d[..]).unwrap();
        }
        let info = w.commit().unwrap();
        assert!(repo.verify(None).unwrap().is_ok());
        assert_eq!(replay_all(&repo, &info.id), members);
        let conn = index::connect(&dir.path().join("r").join("index.sqlite")).unwrap();
        let row = index::snapshot_row(&conn, &info.id).unwrap();
        let meta_rows = index::meta_chunk_rows(&conn, row).unwrap();
        let mut chunk_lists = index::ChunkLists::of(&conn, row).unwrap();
        let mut all = Vec::new();
        while let Some(l) = chunk_lists.next_member().unwrap() {
            all.push(l);
        }
        (meta_rows, all)
    };
    let kept = lists(usize::MAX);
    assert!(kept.0.len() > 10, "{} metadata chunks", kept.0.len());
    assert_eq!(kept.1.len(), members.len());
    assert_eq!(lists(0), kept);
    assert_eq!(lists(20_000), kept);
}

/// Many small members: a metadata stream of several chunks.
fn many_members(n: usize) -> Vec<(Member, Vec<u8>)> {
    (0..n)
        .map(|i| {
            if i % 3 == 0 {
                (
                    member(&format!("CONTENT/CONF/dir{i:05}"), MemberKind::Dir, 0),
                    vec![],
                )
            } else {
                file(
                    &format!("CONTENT/CONF/dir{:05}/file{i:05}.ini", i / 3 * 3),
                    format!("[x]\nn={i}\n").as_bytes(),
                )
            }
        })
        .collect()
}

#[test]
fn shared_metadata_chunks_survive_forget_prune_and_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let repo = Repository::init(&root).unwrap();
    let common = many_members(3000);
    let mut first_members = common.clone();
    first_members.push(file("CONTENT/gone.bin", &noise(300_000, 9)));
    let first = store(&repo, &first_members);
    let second = store(&repo, &common);
    // All but the last metadata chunk or two are the first snapshot's.
    let conn = index::connect(&root.join("index.sqlite")).unwrap();
    let meta_rows =
        |id: &str| index::meta_chunk_rows(&conn, index::snapshot_row(&conn, id).unwrap()).unwrap();
    let (m1, m2) = (meta_rows(&first.id), meta_rows(&second.id));
    assert!(m2.len() > 10, "{} metadata chunks", m2.len());
    let shared = m2.iter().filter(|r| m1.contains(r)).count();
    assert!(shared + 2 >= m2.len(), "{shared} of {} shared", m2.len());
    assert!(second.added < 20_000, "second added {}", second.added);
    drop(conn);

    repo.forget(std::slice::from_ref(&first.id)).unwrap();
    let r = repo
        .prune(PruneOptions {
            dry_run: false,
            repack_threshold: 1.0,
        })
        .unwrap();
    assert!(r.packs_repacked + r.packs_deleted > 0, "{r:?}");
    assert!(repo.verify(None).unwrap().is_ok());
    assert_eq!(replay_all(&repo, &second.id), common);

    drop(repo);
    index::remove(&root).unwrap();
    let repo = Repository::open(&root).unwrap();
    assert_eq!(repo.snapshots().unwrap(), vec![second.clone()]);
    assert_eq!(replay_all(&repo, &second.id), common);
    assert!(repo.verify(None).unwrap().is_ok());
}

#[test]
fn verify_names_the_snapshot_of_a_damaged_metadata_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    // One chunk per group: the damage stays in the metadata chunk.
    let params = ChunkerParams {
        group_size: 0,
        ..ChunkerParams::default()
    };
    let repo = Repository::init_with(&root, params).unwrap();
    let info = store(&repo, &many_members(50));
    let conn = index::connect(&root.join("index.sqlite")).unwrap();
    let rows =
        index::meta_chunk_rows(&conn, index::snapshot_row(&conn, &info.id).unwrap()).unwrap();
    assert!(!rows.is_empty());
    let loc = index::location(&conn, rows[0]).unwrap().unwrap();
    drop(conn);
    let path = root.join(pack_key(&loc.pack));
    let mut bytes = fs::read(&path).unwrap();
    bytes[(loc.group_offset + u64::from(loc.stored_len) / 2) as usize] ^= 0x40;
    fs::write(&path, &bytes).unwrap();

    let chunk = hex::encode(loc.hash);
    for report in [
        repo.verify(None).unwrap(),
        repo.verify(Some(&info.id)).unwrap(),
    ] {
        let p = report
            .problems
            .iter()
            .find(|p| p.chunk.as_deref() == Some(chunk.as_str()))
            .unwrap_or_else(|| panic!("{:?}", report.problems));
        assert_eq!(p.pack.as_deref(), Some(loc.pack.as_str()));
        assert_eq!(
            p.needed_by,
            vec![NeededBy {
                snapshot: info.id.clone(),
                member: META_USER.into()
            }]
        );
        // Reading the snapshot fails too, naming it and the chunk.
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.what.contains(&info.id) && p.what.contains(&chunk)),
            "{:?}",
            report.problems
        );
    }
    // The rebuilt index skips the snapshot, naming it.
    let report = repo.rebuild_index().unwrap();
    assert_eq!(report.snapshots, 0);
    assert!(
        report.skipped.iter().any(|s| s.contains(&info.id)),
        "{:?}",
        report.skipped
    );
}

#[test]
fn changed_middle_adds_little() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(&dir.path().join("r")).unwrap();
    let text = sql_text(60_000, 5);
    let first = store(
        &repo,
        &[file("CONTENT/BACKENDS/MYSQL/mysql/database.sql", &text)],
    );
    let mut changed = text.clone();
    let mid = changed.len() / 2;
    changed[mid..mid + 20].copy_from_slice(b"CHANGED CHANGED CHAN");
    changed.splice(
        mid + 1000..mid + 1000,
        b"('client99999.opsi.local','OpsiClient','new',NULL),"
            .iter()
            .copied(),
    );
    let second = store(
        &repo,
        &[file("CONTENT/BACKENDS/MYSQL/mysql/database.sql", &changed)],
    );
    assert!(text.len() > 4 << 20);
    assert!(
        second.added < 64 * 1024,
        "second added {} of {} (first {})",
        second.added,
        changed.len(),
        first.added
    );
    assert_eq!(replay_all(&repo, &second.id)[0].1, changed);
    assert_eq!(replay_all(&repo, &first.id)[0].1, text);
}

/// The metadata stream is cut at a quarter of the content sizes (spec, "Snapshot files"): a
/// dump whose chunk list changes in a few scattered places stores again only the small
/// metadata chunks around those ids, not whole 8 KiB runs of the list.
#[test]
fn metadata_is_cut_finer_than_contents() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(&dir.path().join("r")).unwrap();
    let text = sql_text(120_000, 9);
    let path = "CONTENT/BACKENDS/MYSQL/mysql/database.sql";
    let first = store(&repo, &[file(path, &text)]);
    let conn = index::connect(&repo.root().join("index.sqlite")).unwrap();
    let meta_lens = |id: &str| -> Vec<i64> {
        let row = index::snapshot_row(&conn, id).unwrap();
        index::meta_chunk_rows(&conn, row)
            .unwrap()
            .into_iter()
            .map(|r| index::location(&conn, r).unwrap().unwrap().len as i64)
            .collect()
    };
    let lens = meta_lens(&first.id);
    let p = ChunkerParams::default().for_metadata();
    assert!(lens.len() > 10, "{lens:?}");
    assert!(lens.iter().all(|&l| l <= p.max_size as i64), "{lens:?}");
    let avg = lens.iter().sum::<i64>() / lens.len() as i64;
    assert!(avg < 4096, "average metadata chunk {avg} B");

    // Four changed rows spread over the dump: each changes one content chunk id.
    let mut changed = text.clone();
    for k in 1..=4 {
        let at = changed.len() * k / 5;
        changed[at..at + 4].copy_from_slice(b"XXXX");
    }
    let second = store(&repo, &[file(path, &changed)]);
    let meta_new: i64 = {
        let old: std::collections::HashSet<i64> =
            index::meta_chunk_rows(&conn, index::snapshot_row(&conn, &first.id).unwrap())
                .unwrap()
                .into_iter()
                .collect();
        let row = index::snapshot_row(&conn, &second.id).unwrap();
        index::meta_chunk_rows(&conn, row)
            .unwrap()
            .into_iter()
            .filter(|r| !old.contains(r))
            .map(|r| index::location(&conn, r).unwrap().unwrap().len as i64)
            .sum()
    };
    let list_bytes = 32 * (text.len() as i64 / 8192);
    assert!(
        meta_new < list_bytes / 3,
        "{meta_new} B of metadata stored again for a chunk list of ~{list_bytes} B"
    );
    assert_eq!(replay_all(&repo, &second.id)[0].1, changed);
}

/// The records of bulk data members are cut at `for_bulk_metadata` sizes, the others at the
/// small metadata sizes, each part by its own content: a snapshot file of many depot files
/// lists few metadata chunks, a changed .ini file re-stores no metadata of the depot, and a
/// changed depot file stores one bulk-sized metadata chunk.
#[test]
fn bulk_data_records_are_cut_apart_and_larger() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(&dir.path().join("r")).unwrap();
    let members = |ini: &[u8], exe: &[u8]| {
        let mut v = vec![file("CONTENT/CONF/a.ini", ini)];
        v.extend((0..300).map(|i| file(&format!("CONTENT/BACKENDS/FILE/c{i}.ini"), b"[x]")));
        v.extend((0..3000).map(|i| {
            let data = if i == 1500 { exe } else { b"MZ" };
            file(&format!("DATA/depot/win10/files/f{i:05}.exe"), data)
        }));
        v.push(file("CONTROL/checksums", b"sums"));
        v
    };
    let first = store(&repo, &members(b"one", b"MZ"));
    let conn = index::connect(&repo.root().join("index.sqlite")).unwrap();
    let rows = |id: &str| index::meta_chunk_rows(&conn, index::snapshot_row(&conn, id).unwrap());
    let len = |r: i64| index::location(&conn, r).unwrap().unwrap().len;
    let first_rows = rows(&first.id).unwrap();
    let stream: u64 = first_rows.iter().map(|&r| u64::from(len(r))).sum();
    let small = ChunkerParams::default().for_metadata();
    let bulk = ChunkerParams::default().for_bulk_metadata();
    assert!(
        (first_rows.len() as u64) < 2 * stream / u64::from(bulk.avg_size),
        "{} metadata chunks for {stream} bytes of stream",
        first_rows.len()
    );
    assert!(first_rows.iter().any(|&r| len(r) > small.max_size));

    let new_rows = |id: &str| -> Vec<u32> {
        let old: std::collections::HashSet<i64> = first_rows.iter().copied().collect();
        let rows = rows(id).unwrap();
        rows.into_iter()
            .filter(|r| !old.contains(r))
            .map(len)
            .collect()
    };
    let ini = store(&repo, &members(b"two", b"MZ"));
    let fresh = new_rows(&ini.id);
    assert!(
        !fresh.is_empty() && fresh.iter().all(|&l| l <= small.max_size),
        "{fresh:?}"
    );
    let exe = store(&repo, &members(b"one", b"MZ!"));
    let fresh = new_rows(&exe.id);
    assert!(
        !fresh.is_empty() && fresh.len() <= 2 && fresh.iter().all(|&l| l >= bulk.min_size),
        "{fresh:?}"
    );
    assert_eq!(replay_all(&repo, &exe.id), members(b"one", b"MZ!"));
}

#[test]
fn verify_names_pack_chunk_snapshot_and_member_of_a_flipped_byte() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let repo = Repository::init(&root).unwrap();
    let info = store(
        &repo,
        &[
            file("CONTENT/a.bin", &noise(200_000, 1)),
            file("CONTENT/b.bin", &noise(100, 2)),
        ],
    );
    let packs = pack_files(&root);
    assert_eq!(packs.len(), 1);
    let mut bytes = fs::read(&packs[0]).unwrap();
    bytes[1000] ^= 0x40; // inside the first group: a.bin's first chunks
    fs::write(&packs[0], &bytes).unwrap();
    let pack_name = packs[0].file_stem().unwrap().to_str().unwrap().to_string();

    let report = repo.verify(None).unwrap();
    assert!(!report.is_ok());
    let p = &report.problems[0];
    assert_eq!(p.pack.as_deref(), Some(pack_name.as_str()));
    assert!(p.chunk.is_some());
    assert_eq!(
        p.needed_by,
        vec![NeededBy {
            snapshot: info.id.clone(),
            member: "CONTENT/a.bin".into()
        }]
    );
    assert!(p.to_string().contains("CONTENT/a.bin"), "{p}");
    assert!(!repo.verify(Some(&info.id[..8])).unwrap().is_ok());

    let mut c = Collect::default();
    match repo.replay(&info.id, &mut c) {
        Err(Error::Corrupt(msg)) => {
            assert!(
                msg.contains(&pack_name) && msg.contains("CONTENT/a.bin"),
                "{msg}"
            );
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }

    // A sink that leaves the damaged member unread (a restore's second pass over a part it
    // does not restore) is not stopped by it: unread chunks are not fetched.
    struct Skip(Vec<(Member, Vec<u8>)>);
    impl MemberSink for Skip {
        fn add(&mut self, m: &Member, content: &mut dyn Read) -> crate::Result<()> {
            let mut b = Vec::new();
            if m.path != "CONTENT/a.bin" {
                content.read_to_end(&mut b).unwrap();
            }
            self.0.push((m.clone(), b));
            Ok(())
        }
    }
    let mut skip = Skip(Vec::new());
    repo.replay(&info.id, &mut skip).unwrap();
    assert_eq!(skip.0[1].1, noise(100, 2));
}

#[test]
fn deleted_pack_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let repo = Repository::init(&root).unwrap();
    let info = store(&repo, &[file("CONTENT/a.ini", b"[info]\nname=x\n")]);
    let packs = pack_files(&root);
    fs::remove_file(&packs[0]).unwrap();
    let report = repo.verify(Some("latest")).unwrap();
    // The pack, and the snapshot whose metadata chunk was in it. The member list went with
    // the pack, so the member is named as such (the index keeps chunk lists, not names).
    assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
    let p = &report.problems[1];
    assert_eq!(p.pack.as_deref(), packs[0].file_stem().unwrap().to_str());
    assert!(p.what.contains("cannot be opened"));
    assert_eq!(
        p.needed_by,
        vec![
            NeededBy {
                snapshot: info.id.clone(),
                member: UNNAMED_USER.into()
            },
            NeededBy {
                snapshot: info.id.clone(),
                member: META_USER.into()
            },
        ]
    );
    let s = &report.problems[0];
    assert!(
        s.what.contains(&info.id) && s.what.contains("cannot be opened"),
        "{s}"
    );
}

#[test]
fn a_snapshot_chunk_missing_from_the_index_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let repo = Repository::init(&root).unwrap();
    let info = store(&repo, &[file("CONTENT/a.bin", &noise(200_000, 1))]);
    let conn = index::connect(&root.join("index.sqlite")).unwrap();
    let mut rows = Vec::new();
    let row = index::snapshot_row(&conn, &info.id).unwrap();
    index::for_each_chunk_list(&conn, row, |ids| {
        rows.extend(ids);
        Ok(())
    })
    .unwrap();
    let meta = index::meta_chunk_rows(&conn, row).unwrap().len();
    index::delete_chunk_rows(&conn, &rows[1..2]).unwrap();
    drop(conn);

    let report = repo.verify(Some(&info.id)).unwrap();
    let what = format!("chunk #{} is missing from the index", rows[1]);
    let p = report
        .problems
        .iter()
        .find(|p| p.what == what)
        .unwrap_or_else(|| panic!("{:?}", report.problems));
    assert_eq!(
        p.needed_by,
        [NeededBy {
            snapshot: info.id.clone(),
            member: "CONTENT/a.bin".into()
        }]
    );
    // The others, and the metadata chunks, were read back.
    assert_eq!(report.chunks as usize, rows.len() - 1 + meta, "{report:?}");
}

/// A new repository at `root` with two snapshots; returns them and the snapshot list.
fn two_snapshots(root: &Path) -> (SnapshotInfo, SnapshotInfo, Vec<SnapshotInfo>) {
    let repo = Repository::init(root).unwrap();
    let a = store(&repo, &sample());
    let b = store(&repo, &[file("CONTENT/x", &noise(100_000, 4))]);
    (a, b, repo.snapshots().unwrap())
}

/// The repository still lists `before` and gives back both snapshots of `two_snapshots` intact.
fn assert_two_snapshots(
    repo: &Repository,
    a: &SnapshotInfo,
    b: &SnapshotInfo,
    before: &[SnapshotInfo],
) {
    assert_eq!(repo.snapshots().unwrap(), before);
    assert_eq!(replay_all(repo, &a.id), sample());
    assert_eq!(replay_all(repo, &b.id)[0].1, noise(100_000, 4));
    assert!(repo.verify(None).unwrap().is_ok());
}

#[test]
fn rebuild_index_from_data_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let (a, b, before) = two_snapshots(&root);
    index::remove(&root).unwrap();

    // Opening notices the missing index and rebuilds it.
    let repo = Repository::open(&root).unwrap();
    assert_eq!(repo.snapshots().unwrap(), before);
    // An explicit rebuild gives the same.
    let report = repo.rebuild_index().unwrap();
    assert_eq!(report.snapshots, 2);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_two_snapshots(&repo, &a, &b, &before);
}

#[test]
fn an_index_of_an_older_schema_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let (a, b, before) = two_snapshots(&root);
    // Schema 2: a UNIQUE hash, no prefix index.
    let conn = index::connect(&root.join("index.sqlite")).unwrap();
    conn.execute_batch(
        "DROP INDEX chunks_prefix; CREATE UNIQUE INDEX old_hash ON chunks(hash);
         UPDATE meta SET value = '2' WHERE key = 'schema'; PRAGMA user_version = 2;",
    )
    .unwrap();
    drop(conn);

    let repo = Repository::open(&root).unwrap();
    let conn = index::connect(&root.join("index.sqlite")).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, index::SCHEMA_VERSION);
    let indexes: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE name IN ('chunks_prefix', 'old_hash')")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(indexes, ["chunks_prefix"]);
    assert_two_snapshots(&repo, &a, &b, &before);
    drop(repo);

    // A newer schema is refused, and left alone.
    conn.execute_batch("PRAGMA user_version = 99").unwrap();
    drop(conn);
    let err = Repository::open(&root).err().expect("refused").to_string();
    assert!(
        err.contains("schema version 99") && err.contains("newer"),
        "{err}"
    );
    assert!(root.join("index.sqlite").exists());
}

#[test]
fn leftovers_are_cleaned_or_reused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    // Small groups and packs, so that the 2 MiB file below fills several packs.
    let params = ChunkerParams {
        pack_size: 256 * 1024,
        group_size: 64 * 1024,
        ..ChunkerParams::default()
    };
    let repo = Repository::init_with(&root, params).unwrap();
    let committed = store(&repo, &[file("CONTENT/base", &noise(50_000, 10))]);

    // 1. A writer that died mid-way: finished packs under packs/, a half pack and a half
    //    snapshot file under tmp/.
    let big = noise(2 << 20, 11);
    let mut w = repo.begin_snapshot(meta("s")).unwrap();
    w.add(&file("CONTENT/big", &big).0, &mut &big[..]).unwrap();
    drop(w);
    // 2. A writer that died between the snapshot file and the index transaction.
    let mut w = repo.begin_snapshot(meta("late")).unwrap();
    let late_data = noise(30_000, 12);
    w.add(&file("CONTENT/late", &late_data).0, &mut &late_data[..])
        .unwrap();
    let late_id = w.write_files_only().unwrap();
    // 3. Something else left in tmp/.
    fs::write(root.join("tmp/pack-1-dead.tmp"), b"partial").unwrap();
    let unindexed_packs = rebuild::list_packs(&LocalDir::new(&root)).unwrap().len() - 1;
    assert!(unindexed_packs >= 2, "{unindexed_packs}");
    // The dropped writer removed its own temporary files; the dead one's stays.
    assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 1);
    assert_eq!(repo.snapshots().unwrap().len(), 1);

    // While a writer holds the shared lock, opening cleans nothing.
    let busy = repo.begin_snapshot(meta("busy")).unwrap();
    let repo2 = Repository::open(&root).unwrap();
    assert_eq!(repo2.snapshots().unwrap().len(), 1);
    drop(busy);
    drop(repo2);

    // The next open with nobody else around cleans up.
    let repo = Repository::open(&root).unwrap();
    assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
    let snaps = repo.snapshots().unwrap();
    assert_eq!(
        snaps
            .iter()
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>()
            .len(),
        2
    );
    assert!(snaps.iter().any(|s| s.id == late_id));
    assert!(snaps.iter().any(|s| s.id == committed.id));
    assert_eq!(replay_all(&repo, &late_id)[0].1, late_data);
    assert!(repo.verify(None).unwrap().is_ok());

    // The dead writer's finished packs are reused: storing the same file adds little.
    let again = store(&repo, &[file("CONTENT/big", &big)]);
    assert!(
        again.added < 400 * 1024,
        "added {} of {}",
        again.added,
        big.len()
    );
    assert_eq!(replay_all(&repo, &again.id)[0].1, big);
}

#[test]
fn files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let repo = Repository::init(&root).unwrap();
    store(&repo, &sample());
    fn walk(p: &Path) {
        for e in fs::read_dir(p).unwrap() {
            let e = e.unwrap();
            let mode = e.metadata().unwrap().permissions().mode() & 0o777;
            if e.file_type().unwrap().is_dir() {
                assert_eq!(mode, 0o700, "{}", e.path().display());
                walk(&e.path());
            } else {
                assert_eq!(mode, 0o600, "{}", e.path().display());
            }
        }
    }
    assert_eq!(
        fs::metadata(&root).unwrap().permissions().mode() & 0o777,
        0o700
    );
    walk(&root);
    assert!(root.join("index.sqlite-wal").exists());
}

#[test]
fn concurrent_writers_both_commit() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let repo = Repository::init(&root).unwrap();
    let shared = noise(1 << 20, 20);
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (repo, shared, root) = (&repo, &shared, &root);
            s.spawn(move || {
                let other;
                let repo = if t == 0 {
                    repo
                } else {
                    other = Repository::open(root).unwrap();
                    &other
                };
                let own = noise(300_000, 30 + t);
                let mut w = repo.begin_snapshot(meta(&format!("host{t}"))).unwrap();
                w.add(&file("CONTENT/shared", shared).0, &mut &shared[..])
                    .unwrap();
                w.add(&file("CONTENT/own", &own).0, &mut &own[..]).unwrap();
                w.commit().unwrap();
            });
        }
    });
    let snaps = repo.snapshots().unwrap();
    assert_eq!(snaps.len(), 2);
    for s in snaps {
        let got = replay_all(&repo, &s.id);
        assert_eq!(got[0].1, shared);
    }
    assert!(repo.verify(None).unwrap().is_ok());
}

#[test]
fn init_and_open_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let msg = |e: Error| e.to_string();
    assert!(msg(Repository::open(&root).err().unwrap()).contains("does not exist"));
    fs::create_dir(&root).unwrap();
    assert!(msg(Repository::open(&root).err().unwrap()).contains("not an opsi-backup repository"));
    drop(Repository::init(&root).unwrap());
    assert!(msg(Repository::init(&root).err().unwrap()).contains("already holds a repository"));
    let cfg = root.join("config.json");
    let text = fs::read_to_string(&cfg).unwrap().replace(
        &format!("\"version\": {}", config::FORMAT_VERSION),
        "\"version\": 7",
    );
    fs::File::create(&cfg)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let e = msg(Repository::open(&root).err().unwrap());
    assert!(
        e.contains("version 7") && e.contains("not supported"),
        "{e}"
    );
    // Format version 1 (member records in the snapshot file) is refused, not read.
    let text = fs::read_to_string(&cfg)
        .unwrap()
        .replace("\"version\": 7", "\"version\": 1");
    fs::write(&cfg, text).unwrap();
    let e = msg(Repository::open(&root).err().unwrap());
    assert!(
        e.contains("repository format version 1 is not supported") && e.contains("versions 2 to 6"),
        "{e}"
    );
}

#[test]
fn resolve_latest_prefix_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(&dir.path().join("r")).unwrap();
    assert!(repo
        .resolve("latest")
        .unwrap_err()
        .to_string()
        .contains("no snapshots"));
    let mut ids = Vec::new();
    for i in 0..20 {
        let mut w = repo
            .begin_snapshot(SnapshotMeta {
                time: 1000 + i,
                ..meta("s")
            })
            .unwrap();
        w.add(&file("CONTENT/x", &[i as u8]).0, &mut &[i as u8][..])
            .unwrap();
        ids.push(w.commit().unwrap().id);
    }
    assert_eq!(repo.resolve("latest").unwrap().id, ids[19]);
    assert_eq!(repo.resolve(&ids[3][..12]).unwrap().id, ids[3]);
    assert!(repo
        .resolve("zz")
        .unwrap_err()
        .to_string()
        .contains("not a snapshot id"));
    // 20 ids over 16 first digits: some first digit repeats.
    let first: Vec<char> = ids.iter().map(|i| i.chars().next().unwrap()).collect();
    let dup = first
        .iter()
        .find(|c| first.iter().filter(|d| d == c).count() > 1)
        .unwrap();
    assert!(repo
        .resolve(&dup.to_string())
        .unwrap_err()
        .to_string()
        .contains("ambiguous"));
    let unused = "0123456789abcdef".chars().find(|c| !first.contains(c));
    if let Some(u) = unused {
        assert!(repo
            .resolve(&u.to_string())
            .unwrap_err()
            .to_string()
            .contains("no snapshot"));
    }
}

#[test]
fn verify_reports_damaged_and_missing_snapshot_files_and_stray_packs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let repo = Repository::init(&root).unwrap();
    let a = store(&repo, &[file("CONTENT/a", b"aaa")]);
    let b = store(&repo, &[file("CONTENT/b", b"bbb")]);
    let path_a = root.join(snapshot_key(&a.id));
    let mut bytes = fs::read(&path_a).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&path_a, bytes).unwrap();
    fs::remove_file(root.join(snapshot_key(&b.id))).unwrap();
    fs::create_dir_all(root.join("packs/ab")).unwrap();
    fs::write(
        root.join("packs/ab")
            .join(format!("{}.pack", "ab".repeat(32))),
        b"junk",
    )
    .unwrap();

    let report = repo.verify(None).unwrap();
    let text: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(report.problems.len(), 3, "{text:#?}");
    assert!(
        text.iter()
            .any(|t| t.contains(&a.id) && t.contains("damaged")),
        "{text:#?}"
    );
    assert!(text.iter().any(|t| t.contains(&b.id)), "{text:#?}");
    assert!(
        text.iter()
            .any(|t| t.contains(&"ab".repeat(32)) && t.contains("not in the index")),
        "{text:#?}"
    );
}

#[test]
fn exclusive_lock_waits_for_writers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let repo = Repository::init(&root).unwrap();
    let mut w = repo.begin_snapshot(meta("s")).unwrap();
    w.add(&file("CONTENT/a", b"a").0, &mut &b"a"[..]).unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            let r = repo.rebuild_index();
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            r
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(
            !done.load(std::sync::atomic::Ordering::SeqCst),
            "rebuild did not wait"
        );
        let info = w.commit().unwrap();
        let report = h.join().unwrap().unwrap();
        assert_eq!(report.snapshots, 1);
        assert_eq!(repo.snapshots().unwrap()[0].id, info.id);
    });
}

#[test]
fn opsiconfd_snapshots_need_format_version_5() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let mut repo = init_as_version(&root, 4);
    let meta = SnapshotMeta {
        time: 1,
        host: "h".into(),
        backends: vec![crate::store::OPSICONFD_BACKEND.into()],
        sysinfo: vec![],
        source: "import x".into(),
    };
    let e = repo.begin_snapshot(meta.clone()).err().unwrap().to_string();
    assert!(e.contains("cannot hold opsiconfd snapshots"), "{e}");
    assert!(repo.allow_kinds().unwrap());
    assert!(!repo.allow_kinds().unwrap());
    let text = fs::read_to_string(root.join("config.json")).unwrap();
    assert!(text.contains("\"version\": 5"), "{text}");
    let info = repo.begin_snapshot(meta).unwrap().commit().unwrap();
    assert_eq!(info.kind(), crate::store::SnapshotKind::Opsiconfd);
    // The opsi-backup snapshots of the same host do not take it as their parent.
    assert!(repo.parent("h").unwrap().is_none());
    assert!(repo
        .parent_in_series("h", &crate::store::Series::of(&["opsiconfd".to_string()]))
        .unwrap()
        .is_some());
}
