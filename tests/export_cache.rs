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
