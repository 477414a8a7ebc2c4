//! The export cache: a night's export splices the compressed segments of an earlier export
//! wherever the archive did not change, and writes byte for byte what compressing afresh
//! writes, accepted by bzip2 -t / gzip -t, Python's tarfile and verify. A damaged cache entry
//! is compressed again, never spliced.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::fake_server::FakeServer;
use common::{ok, repo_bin};

/// Exports the latest snapshot; returns the archive's bytes and the "N of M" reuse counts.
fn export(
    root: &Path,
    repo: &Path,
    codec: &str,
    dest: &Path,
    extra: &[&str],
) -> (Vec<u8>, (u64, u64)) {
    let out = repo_bin(root, repo)
        .args(["-v", "export", "latest", "-c", codec])
        .args(extra)
        .arg(dest)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "export failed: {err}");
    let reuse = err
        .lines()
        .find_map(|l| {
            let (_, tail) = l.split_once(" (")?;
            let (n, tail) = tail.split_once(" of ")?;
            let (m, _) = tail.split_once(" compressed segments reused")?;
            Some((n.parse().ok()?, m.parse().ok()?))
        })
        .unwrap_or((0, 0));
    (std::fs::read(dest).unwrap(), reuse)
}

fn accepted(path: &Path, tester: &str) {
    assert!(
        Command::new(tester)
            .arg("-t")
            .arg(path)
            .status()
            .unwrap()
            .success(),
        "{tester} -t rejects {}",
        path.display()
    );
    let py = Command::new("python3")
        .args([
            "-c",
            "import tarfile,sys;print(len(tarfile.open(sys.argv[1]).getmembers()))",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "python's tarfile rejects {}",
        path.display()
    );
}

fn cache_entries(repo: &Path) -> Vec<std::path::PathBuf> {
    walkdir::WalkDir::new(repo.join("cache"))
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}

#[test]
fn a_night_export_splices_unchanged_segments_and_writes_the_same_bytes() {
    let server = FakeServer::new(300, false);
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let root = server.root();
    ok(repo_bin(root, &repo).arg("init"));
    ok(repo_bin(root, &repo).arg("create"));
    for (codec, _) in [("bz2", "bzip2"), ("gz", "gzip")] {
        let (_, (hits, total)) = export(
            root,
            &repo,
            codec,
            &work.path().join(format!("n1.{codec}")),
            &[],
        );
        assert_eq!(hits, 0, "{codec}: an empty cache cannot hit");
        assert!(
            total > 3,
            "{codec}: the archive should make several segments, made {total}"
        );
    }

    // Night 2: one client checked in, in the middle of the file backend.
    let ini = server.p("/var/lib/opsi/config/clients/client0150.example.org.ini");
    let mut text = std::fs::read_to_string(&ini).expect("client ini");
    text.push_str("[new-section]\nlastseen = 2026-12-01 03:00:00\n");
    std::fs::write(&ini, text).unwrap();
    ok(repo_bin(root, &repo).arg("create"));

    for (codec, tester) in [("bz2", "bzip2"), ("gz", "gzip")] {
        let spliced = work.path().join(format!("n2.{codec}"));
        let (bytes, (hits, total)) = export(root, &repo, codec, &spliced, &[]);
        eprintln!("MEASURE {codec}: {hits} of {total} segments reused");
        assert!(
            hits > 0 && hits < total,
            "{codec}: {hits} of {total} segments reused; expected most, not all"
        );
        let fresh = work.path().join(format!("n2-fresh.{codec}"));
        let (fresh_bytes, (fh, ft)) = export(root, &repo, codec, &fresh, &["--no-cache"]);
        assert_eq!((fh, ft), (0, 0), "--no-cache must not touch the cache");
        assert!(
            bytes == fresh_bytes,
            "{codec}: spliced archive differs from a fresh one"
        );
        accepted(&spliced, tester);
        assert_eq!(
            ok(repo_bin(root, &repo).arg("verify").arg(&spliced)).trim(),
            "Verified"
        );
    }

    // Damage every entry: nothing damaged is spliced, the output is still right, and the
    // entries are made again.
    for e in cache_entries(&repo) {
        let mut b = std::fs::read(&e).unwrap();
        let last = b.len() - 1;
        b[last] ^= 0x55;
        std::fs::write(&e, b).unwrap();
    }
    let fresh = std::fs::read(work.path().join("n2-fresh.bz2")).unwrap();
    let again = work.path().join("n2-again.bz2");
    let (bytes, (hits, total)) = export(root, &repo, "bz2", &again, &[]);
    assert_eq!(hits, 0, "damaged entries were spliced");
    assert!(bytes == fresh, "export from a damaged cache differs");
    let (bytes, (hits, total2)) = export(root, &repo, "bz2", &again, &[]);
    assert_eq!(
        (hits, total2),
        (total, total),
        "entries were not made again"
    );
    assert!(bytes == fresh);

    // The cache holds passwords' neighbours: private like the rest of the repository.
    for e in walkdir::WalkDir::new(repo.join("cache")) {
        let e = e.unwrap();
        let mode = e.metadata().unwrap().permissions().mode() & 0o777;
        let want = if e.file_type().is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, want, "{}", e.path().display());
    }
    // stats counts it apart from the backup data.
    let stats = ok(repo_bin(root, &repo).args(["stats", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert!(v["export_cache_bytes"].as_u64().unwrap() > 0);
}

/// Issue 22: a dump carried in the file backend's tree, a night that changes a few rows
/// spread over it. The cut is content-defined (its gear hash covers 64 bytes), so an edit
/// changes the segment holding it and, when it moves that segment's cut, the next one; after
/// it the cuts fall where they fell before, even when the edit moved the rest of the dump by a
/// byte. So an edit costs at most two segments; the member's header (new mtime and size) is
/// one more edit. Every other segment is reused, and the archive is exactly what compressing
/// afresh writes.
#[test]
fn edits_spread_over_a_large_member_reuse_the_other_segments() {
    let server = FakeServer::new(20, false);
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let root = server.root();
    let dump = server.p("/var/lib/opsi/config/opsi.sql");
    let mut sql = String::new();
    let mut x: u64 = 7;
    let mut row = 0u64;
    while sql.len() < 24 << 20 {
        sql.push_str("INSERT INTO `SOFTWARE_CONFIG` VALUES ");
        for _ in 0..400 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            row += 1;
            sql.push_str(&format!(
                "({row},'client-{:05}.domain.example','Software {}','{}.{}','2026-11-{:02} 0{}:1{}:2{}',{}),",
                x >> 54,
                (x >> 20) % 6000,
                (x >> 12) % 30,
                (x >> 8) % 10,
                1 + (x >> 40) % 28,
                (x >> 30) % 10,
                (x >> 33) % 10,
                (x >> 36) % 10,
                (x >> 44) % 100
            ));
        }
        sql.pop();
        sql.push_str(";\n");
    }
    std::fs::write(&dump, &sql).unwrap();
    ok(repo_bin(root, &repo).arg("init"));
    ok(repo_bin(root, &repo).arg("create"));
    let (_, (hits, _)) = export(root, &repo, "bz2", &work.path().join("n1.bz2"), &[]);
    assert_eq!(hits, 0);

    // Night 2: `edits` rows spread evenly over the dump change, alternately a timestamp (same
    // length) and a number that gains a digit (the rest of the dump moves by a byte).
    let edits = 6;
    let mut bytes = sql.into_bytes();
    let step = bytes.len() / (edits + 1);
    for k in 1..=edits {
        let at = k * step;
        if k % 2 == 1 {
            let i = at + bytes[at..].windows(6).position(|w| w == b",'2026").unwrap() + 2;
            bytes[i..i + 4].copy_from_slice(b"2027");
        } else {
            let i = at + bytes[at..].windows(3).position(|w| w == b"),(").unwrap();
            bytes.insert(i, b'7');
        }
    }
    std::fs::write(&dump, &bytes).unwrap();
    ok(repo_bin(root, &repo).arg("create"));
    let spliced = work.path().join("n2.bz2");
    let (archive, (hits, total)) = export(root, &repo, "bz2", &spliced, &[]);
    eprintln!("MEASURE: {hits} of {total} segments reused");
    let at_most_missed = 2 * (edits as u64 + 1);
    assert!(
        total > 2 * at_most_missed && hits + at_most_missed >= total,
        "{hits} of {total} segments reused; {edits} edits may cost at most {at_most_missed}"
    );
    let (fresh, _) = export(
        root,
        &repo,
        "bz2",
        &work.path().join("n2-fresh.bz2"),
        &["--no-cache"],
    );
    assert!(archive == fresh, "spliced archive differs from a fresh one");
    accepted(&spliced, "bzip2");
    let py = Command::new("python3")
        .args([
            "-c",
            "import tarfile,sys;t=tarfile.open(sys.argv[1]);m=[x for x in t.getmembers() if x.name.endswith('opsi.sql')][0];sys.stdout.buffer.write(t.extractfile(m).read())",
        ])
        .arg(&spliced)
        .output()
        .unwrap();
    assert!(py.status.success());
    assert!(
        py.stdout == bytes,
        "the archive's dump differs from the file"
    );
}
