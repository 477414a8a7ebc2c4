//! Repository `verify` finds every damaged byte of the repository's data files (spec:
//! `store-format/README.md`, section "Reading and verification"): seeded random bit flips and
//! truncations of packs, snapshot files and config.json, each reported naming the file and
//! the snapshots it affects; the pack structures one by one; damaged lengths read off disk
//! allocate nothing near what they claim; and the CLI's exit code and messages.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::file_member as file;
use opsi_backup::sink::MemberSink;
use opsi_backup::store::{ChunkerParams, Repository, SnapshotMeta, VerifyReport};

/// Records the largest single allocation of this test binary: a length read off a damaged
/// file must not turn into an allocation of that size.
struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method only records a size and passes the call on to the system allocator
// unchanged, so its contract is System's.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LARGEST.fetch_max(l.size(), Ordering::Relaxed);
        // SAFETY: our caller keeps GlobalAlloc's contract, which is all System needs.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        LARGEST.fetch_max(l.size(), Ordering::Relaxed);
        // SAFETY: as in alloc.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: as in alloc; p came from System through this allocator.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LARGEST.fetch_max(new, Ordering::Relaxed);
        // SAFETY: as in dealloc.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Largest = Largest;

/// No allocation of the small test repositories comes near this.
const ALLOC_LIMIT: usize = 256 << 20;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Text-like data with some noise, changed at a few places per night.
fn content(n: usize, night: u64, seed: u64) -> Vec<u8> {
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut d: Vec<u8> = (0..n)
        .map(|i| {
            let x = r.next();
            if (i / 9000) % 3 == 0 {
                (x >> 24) as u8
            } else {
                b"INSERT INTO t VALUES (1,'abc'),"[(x % 31) as usize]
            }
        })
        .collect();
    for p in (0..n.saturating_sub(8)).step_by(20_000) {
        d[p..p + 8].copy_from_slice(&(night * 1_000_003 + p as u64).to_le_bytes());
    }
    d
}

/// A small repository: three nights (the later ones with delta groups against their parent)
/// in several small packs.
fn small_repository(root: &Path) -> Repository {
    let params = ChunkerParams {
        min_size: 512,
        avg_size: 2048,
        max_size: 8192,
        group_size: 8 * 1024,
        pack_size: 24 * 1024,
        zstd_level: 3,
    };
    let repo = Repository::init_with(root, params).unwrap();
    for night in 1..=3u64 {
        let mut w = repo
            .begin_snapshot(SnapshotMeta {
                time: night as i64,
                host: "srv".into(),
                backends: vec![],
                sysinfo: vec![],
                source: "create".into(),
            })
            .unwrap();
        w.take_parent("srv", |_, _| Ok(())).unwrap();
        for (m, d) in [
            file("CONTENT/a", content(60_000, night, 1)),
            file("CONTENT/b", content(30_000, night.min(2), 2)),
            file(
                &format!("CONTENT/night{night}"),
                content(5_000, night, night),
            ),
        ] {
            w.add(&m, &mut &d[..]).unwrap();
        }
        w.commit().unwrap();
    }
    repo
}

/// Every pack, every snapshot file and config.json, each with the name a report gives it.
fn data_files(root: &Path) -> Vec<(PathBuf, String)> {
    let mut files: Vec<(PathBuf, String)> = walkdir::WalkDir::new(root.join("packs"))
        .into_iter()
        .chain(walkdir::WalkDir::new(root.join("snapshots")))
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let stem = e.path().file_stem().unwrap().to_string_lossy().into_owned();
            (e.path().to_path_buf(), stem)
        })
        .collect();
    files.sort();
    files.push((root.join("config.json"), "config.json".into()));
    files
}

/// Whether `report` names `file` and says which snapshots it affects.
fn names(report: &VerifyReport, file: &str) -> bool {
    report
        .problems
        .iter()
        .any(|p| p.to_string().contains(file) && !p.needed_by.is_empty())
}

#[test]
fn every_random_bit_flip_and_truncation_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let repo = small_repository(&root);
    assert!(repo.verify(None).unwrap().is_ok());
    let files = data_files(&root);
    let packs = files.iter().filter(|f| f.0.extension().unwrap() == "pack");
    assert!(packs.count() >= 4, "several packs: {files:?}");
    let t = std::time::Instant::now();
    let mut rng = Rng(0x5e_ed0f_da7a);
    let (mut flips, mut cuts) = (0, 0);
    for trial in 0..520 {
        let (path, name) = &files[rng.below(files.len() as u64) as usize];
        let original = std::fs::read(path).unwrap();
        let what = if trial % 10 == 9 {
            // Truncation by 1 to 64 bytes (at most the whole file).
            let cut = 1 + rng.below(64.min(original.len() as u64)) as usize;
            std::fs::write(path, &original[..original.len() - cut]).unwrap();
            cuts += 1;
            format!("truncated by {cut}")
        } else {
            let at = rng.below(original.len() as u64) as usize;
            let bit = rng.below(8);
            let mut damaged = original.clone();
            damaged[at] ^= 1 << bit;
            std::fs::write(path, &damaged).unwrap();
            flips += 1;
            format!("bit {bit} of byte {at} flipped")
        };
        let report = repo.verify(None).unwrap();
        std::fs::write(path, &original).unwrap();
        assert!(
            names(&report, name),
            "trial {trial}: {} {what}: not reported with the file: {:#?}",
            path.display(),
            report.problems
        );
    }
    eprintln!(
        "{flips} bit flips and {cuts} truncations over {} files, all found, in {:?}",
        files.len(),
        t.elapsed()
    );
    assert!(repo.verify(None).unwrap().is_ok());
    assert!(LARGEST.load(Ordering::Relaxed) < ALLOC_LIMIT);
}

/// The pack structures of the finding one by one: leading magic, trailer hash, trailer
/// length, end magic, and `truncate -s -10`.
#[test]
fn each_pack_structure_is_covered() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let repo = small_repository(&root);
    let (path, name) = data_files(&root)
        .into_iter()
        .find(|f| f.0.extension().unwrap() == "pack")
        .unwrap();
    let original = std::fs::read(&path).unwrap();
    let n = original.len();
    for (what, at) in [
        ("leading magic", 3),
        ("trailer hash", n - 44 + 5),
        ("trailer length", n - 12),
        ("end magic", n - 8 + 2),
        ("truncate -10", n),
    ] {
        let mut damaged = original.clone();
        if at == n {
            damaged.truncate(n - 10);
        } else {
            damaged[at] ^= 0x10;
        }
        std::fs::write(&path, &damaged).unwrap();
        let report = repo.verify(None).unwrap();
        std::fs::write(&path, &original).unwrap();
        assert!(names(&report, &name), "{what}: {:#?}", report.problems);
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.what.contains("does not match its name")),
            "{what}: {:#?}",
            report.problems
        );
    }
    assert!(repo.verify(None).unwrap().is_ok());
}

fn sql(root: &Path, statement: &str) {
    let conn = rusqlite::Connection::open(root.join("index.sqlite")).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    conn.execute(statement, []).unwrap();
}

/// Group lengths in the index (a cache, but read before the pack confirms them) cannot make a
/// reader allocate what they claim.
#[test]
fn group_lengths_are_bounded_by_the_pack() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    drop(small_repository(&root));
    sql(
        &root,
        "UPDATE groups SET plain_len = 1 << 40 WHERE id = (SELECT MIN(id) FROM groups WHERE flags = 1)",
    );
    sql(
        &root,
        "UPDATE groups SET stored_len = 4000000000 WHERE id = (SELECT MAX(id) FROM groups WHERE flags = 1)",
    );
    let repo = Repository::open(&root).unwrap();
    let report = repo.verify(None).unwrap();
    let all: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    assert!(
        all.iter().any(|p| p.contains("wrong plain length")),
        "{all:#?}"
    );
    assert!(all.iter().any(|p| p.contains("beyond the end")), "{all:#?}");
    assert!(LARGEST.load(Ordering::Relaxed) < ALLOC_LIMIT);
}

/// A snapshot file whose name matches its content but whose record length is damaged: the
/// repository's recovery reads it when opening; it is refused without a 4 GiB allocation.
#[test]
fn a_snapshot_record_length_is_bounded_by_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    drop(small_repository(&root));
    let mut body = Vec::new();
    {
        let mut enc = zstd::Encoder::new(&mut body, 3).unwrap();
        std::io::Write::write_all(&mut enc, &[1, 0xf0, 0xff, 0xff, 0xff, b'{']).unwrap();
        enc.finish().unwrap();
    }
    let mut crafted = b"OBKSNAP\x02".to_vec();
    crafted.extend_from_slice(&body);
    let id = blake3::hash(&crafted).to_hex().to_string();
    let path = root.join("snapshots").join(format!("{id}.snap"));
    std::fs::write(&path, &crafted).unwrap();
    let repo = Repository::open(&root).unwrap();
    assert!(LARGEST.load(Ordering::Relaxed) < ALLOC_LIMIT);
    let report = repo.verify(None).unwrap();
    assert!(names(&report, &id), "{:#?}", report.problems);
    assert_eq!(repo.snapshots().unwrap().len(), 3);
}

fn verify_cli(root: &Path, repo: &Path) -> (i32, String) {
    let (code, out, err) = common::run(common::repo_bin(root, repo).arg("verify"));
    (code, format!("{out}{err}"))
}

#[test]
fn cli_exit_code_and_messages() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    drop(small_repository(&root));
    let files = data_files(&root);
    let (code, out) = verify_cli(dir.path(), &root);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Verified") && !out.contains("no checksum"),
        "{out}"
    );
    let pack = files.iter().find(|f| f.0.extension().unwrap() == "pack");
    let snap = files.iter().find(|f| f.0.extension().unwrap() == "snap");
    for (path, name) in [pack.unwrap(), snap.unwrap()] {
        let original = std::fs::read(path).unwrap();
        let mut damaged = original.clone();
        damaged[original.len() / 2] ^= 4;
        std::fs::write(path, &damaged).unwrap();
        let (code, out) = verify_cli(dir.path(), &root);
        std::fs::write(path, &original).unwrap();
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains(name.as_str()) && out.contains("Verification failed"),
            "{out}"
        );
    }
    // Damaged config.json: the repository is not opened; the message names the file.
    let cfg = root.join("config.json");
    let original = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        original.replace("\"pack_size\": 24576", "\"pack_size\": 24577"),
    )
    .unwrap();
    let (code, out) = verify_cli(dir.path(), &root);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("config.json") && out.contains("checksum mismatch"),
        "{out}"
    );
    // A config.json of an older build (no checksum) is read; verify says so, as a note.
    let mut old: serde_json::Value = serde_json::from_str(&original).unwrap();
    old.as_object_mut().unwrap().remove("checksum").unwrap();
    std::fs::write(&cfg, serde_json::to_string_pretty(&old).unwrap()).unwrap();
    let (code, out) = verify_cli(dir.path(), &root);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("NOTE: config.json has no checksum"), "{out}");
}

/// Intact pack and snapshot files the index does not know yet (a writer renamed them and has
/// not committed, or recovery has not run): notes, not damage.
#[test]
fn intact_files_not_yet_indexed_are_notes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let repo = small_repository(&root);
    // An intact pack of another repository stands for a pack a writer has just renamed.
    let other = Repository::init(&dir.path().join("other")).unwrap();
    let mut w = other
        .begin_snapshot(SnapshotMeta {
            time: 9,
            host: "o".into(),
            backends: vec![],
            sysinfo: vec![],
            source: "create".into(),
        })
        .unwrap();
    let (m, d) = file("CONTENT/x", content(10_000, 9, 99));
    w.add(&m, &mut &d[..]).unwrap();
    w.commit().unwrap();
    let mut copied = Vec::new();
    for (path, name) in data_files(&dir.path().join("other")) {
        if path.extension().unwrap() == "pack" {
            let to = root.join("packs").join(&name[..2]);
            std::fs::create_dir_all(&to).unwrap();
            std::fs::copy(&path, to.join(format!("{name}.pack"))).unwrap();
            copied.push(name);
        }
    }
    // A snapshot whose index rows are not there (yet).
    let last = repo.snapshots().unwrap().pop().unwrap().id;
    sql(
        &root,
        &format!("DELETE FROM snapshots WHERE name = '{last}'"),
    );
    let report = repo.verify(None).unwrap();
    assert!(report.is_ok(), "{:#?}", report.problems);
    for name in copied.iter().chain([&last]) {
        assert!(
            report.notes.iter().any(|n| n.contains(name.as_str())),
            "{name}: {:#?}",
            report.notes
        );
    }
    // Damaged, the same files are problems.
    let snap = root.join("snapshots").join(format!("{last}.snap"));
    let mut bytes = std::fs::read(&snap).unwrap();
    bytes[20] ^= 1;
    std::fs::write(&snap, &bytes).unwrap();
    let report = repo.verify(None).unwrap();
    assert!(names(&report, &last), "{:#?}", report.problems);
}
