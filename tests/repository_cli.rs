//! The repository through the command line: nightly snapshots, dedup, export/import,
//! restore from a snapshot, verify naming damaged data, index rebuild, permissions.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::fake_server::FakeServer;
use common::{bin, ok, run, tree};

#[test]
fn nightly_snapshots_dedup_restore_and_export() {
    let server = FakeServer::new(200, true);
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    ok(common::repo_bin(server.root(), &repo).arg("init"));
    ok(common::repo_bin(server.root(), &repo).arg("create"));
    let after_first = common::dir_size(&repo);
    ok(common::repo_bin(server.root(), &repo).arg("create"));
    let second_added = common::dir_size(&repo) - after_first;

    let snaps = common::snapshots(server.root(), &repo);
    assert_eq!(snaps.len(), 2);
    let size = snaps[1]["size"].as_u64().unwrap();
    for key in ["id", "time", "host", "backends", "size", "added"] {
        assert!(snaps[1].get(key).is_some(), "--json lacks {key}");
    }
    assert_eq!(snaps[1]["host"], "opsiserver.example.org");
    eprintln!(
        "MEASURE second_added={second_added} added={} size={size}",
        snaps[1]["added"]
    );
    assert!(
        second_added * 100 < size,
        "an unchanged night added {second_added} bytes of {size}"
    );
    // Its packs and snapshot file: the metadata chunks are the first night's (before format
    // version 2, 70 KB of snapshot file).
    let added = snaps[1]["added"].as_u64().unwrap();
    eprintln!("an unchanged night added {added} bytes ({second_added} with the index)");
    assert!(added < 20_000, "an unchanged night added {added} bytes");

    // Permissions: the repository holds passwords and PC keys.
    for e in walkdir::WalkDir::new(&repo) {
        let e = e.unwrap();
        let mode = e.metadata().unwrap().permissions().mode() & 0o777;
        let want = if e.file_type().is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, want, "{}", e.path().display());
    }

    // Restore from the snapshot into an empty root gives the same tree.
    let target = tempfile::tempdir().unwrap();
    ok(common::repo_bin(target.path(), &repo).args(["restore", "latest", "--configuration"]));
    for sub in ["etc/opsi", "var/lib/opsi/config"] {
        tree::assert_same(&server.root().join(sub), &target.path().join(sub));
    }

    // Export: what create would have written that night, accepted by verify and python.
    let direct = work.path().join("direct.tar");
    ok(bin(server.root())
        .args(["create", "-c", "none"])
        .arg(&direct));
    let exported = work.path().join("exported.tar");
    ok(common::repo_bin(server.root(), &repo)
        .args(["export", "latest", "-c", "none"])
        .arg(&exported));
    let (a, b) = (
        std::fs::read(&direct).unwrap(),
        std::fs::read(&exported).unwrap(),
    );
    let end = a
        .windows(17)
        .position(|w| w == b"CONTROL/checksums")
        .unwrap();
    assert_eq!(
        a[..end],
        b[..end],
        "exported CONTENT differs from a direct archive of the same tree"
    );
    let bz = work.path().join("exported.tar.bz2");
    ok(common::repo_bin(server.root(), &repo)
        .args(["export", "latest"])
        .arg(&bz));
    assert!(Command::new("bzip2")
        .arg("-t")
        .arg(&bz)
        .status()
        .unwrap()
        .success());
    assert_eq!(
        ok(common::repo_bin(server.root(), &repo)
            .arg("verify")
            .arg(&bz))
        .trim(),
        "Verified"
    );
    let py = Command::new("python3")
        .args([
            "-c",
            "import tarfile,sys;print(len(tarfile.open(sys.argv[1]).getmembers()))",
        ])
        .arg(&bz)
        .output()
        .unwrap();
    assert!(py.status.success());
}

#[test]
fn import_then_export_is_byte_identical_for_original_archives() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden");
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let root = work.path();
    ok(common::repo_bin(root, &repo).arg("init"));
    for name in [
        "opsi-backup-none.tar",
        "opsi-backup-bz2.tar.bz2",
        "opsi-backup-gz.tar.gz",
    ] {
        ok(common::repo_bin(root, &repo)
            .arg("import")
            .arg(fixtures.join(name)));
    }
    let snaps = common::snapshots(root, &repo);
    assert_eq!(snaps.len(), 3);
    let original = std::fs::read(fixtures.join("opsi-backup-none.tar")).unwrap();
    for s in &snaps {
        assert_eq!(s["host"], "opsiserver.example.org");
        assert_eq!(
            s["sysinfo"][6],
            serde_json::json!(["opsiVersion", "4.3.0.28"])
        );
        let id = s["id"].as_str().unwrap();
        let out = work.path().join(format!("{id}.tar"));
        ok(common::repo_bin(root, &repo)
            .args(["export", id, "-c", "none"])
            .arg(&out));
        assert!(
            std::fs::read(&out).unwrap() == original,
            "export of {} differs from the original",
            s["source"]
        );
    }
    // The three imports share every chunk: the later two cost only their snapshot files.
    assert!(
        snaps[1]["added"].as_u64().unwrap() < 20_000,
        "{}",
        snaps[1]["added"]
    );
}

#[test]
fn import_refuses_a_damaged_archive() {
    let server = FakeServer::new(5, false);
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    ok(common::repo_bin(server.root(), &repo).arg("init"));
    let a = work.path().join("a.tar");
    ok(bin(server.root()).args(["create", "-c", "none"]).arg(&a));
    let mut bytes = std::fs::read(&a).unwrap();
    let at = bytes.windows(9).position(|w| w == b"[DEVICE_0").unwrap();
    bytes[at + 2] ^= 0x20;
    std::fs::write(&a, bytes).unwrap();
    let (code, _, err) = run(common::repo_bin(server.root(), &repo).arg("import").arg(&a));
    // 3: damage found (README, "Exit codes").
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("is corrupt"), "{err}");
    assert!(common::snapshots(server.root(), &repo).is_empty());
}

#[test]
fn verify_names_damaged_pack_chunk_snapshot_and_member_and_rebuild_index_works() {
    let server = FakeServer::new(30, false);
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    ok(common::repo_bin(server.root(), &repo).arg("init"));
    ok(common::repo_bin(server.root(), &repo).arg("create"));
    ok(common::repo_bin(server.root(), &repo).arg("create"));
    assert_eq!(
        ok(common::repo_bin(server.root(), &repo).arg("verify")).trim(),
        "Verified"
    );

    // Lose the index: rebuild it from packs and snapshot files alone.
    let before = common::snapshots(server.root(), &repo);
    std::fs::remove_file(repo.join("index.sqlite")).unwrap();
    let _ = std::fs::remove_file(repo.join("index.sqlite-wal"));
    let _ = std::fs::remove_file(repo.join("index.sqlite-shm"));
    ok(common::repo_bin(server.root(), &repo).arg("rebuild-index"));
    let after = common::snapshots(server.root(), &repo);
    let ids = |v: &[serde_json::Value]| {
        v.iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&before), ids(&after));
    assert_eq!(
        ok(common::repo_bin(server.root(), &repo).arg("verify")).trim(),
        "Verified"
    );

    // Flip one byte in the first quarter of the biggest pack (its content chunks; the
    // metadata chunks, stored at commit, come last).
    let pack = common::largest_pack(&repo);
    let mut bytes = std::fs::read(&pack).unwrap();
    let at = bytes.len() / 4;
    bytes[at] ^= 0xff;
    std::fs::write(&pack, bytes).unwrap();
    let (code, out, err) = run(common::repo_bin(server.root(), &repo).arg("verify"));
    assert_eq!((code, out.trim()), (1, "Verification failed"), "{err}");
    let pack_name = pack
        .file_name()
        .unwrap()
        .to_string_lossy()
        .replace(".pack", "");
    assert!(err.contains(&pack_name[..12]), "pack not named: {err}");
    assert!(
        err.contains("member CONTENT/") || err.contains("member CONTROL/"),
        "no member named: {err}"
    );
    assert!(
        err.contains(&after[0]["id"].as_str().unwrap()[..12]),
        "no snapshot named: {err}"
    );

    // Restoring from damaged data touches nothing.
    let target = tempfile::tempdir().unwrap();
    let (code, _, _) = run(common::repo_bin(target.path(), &repo).args([
        "restore",
        "latest",
        "--configuration",
        "--backends",
        "all",
    ]));
    assert_eq!(code, 1);
    assert!(!target.path().join("etc").exists());
}

#[test]
fn snapshot_names_latest_prefix_and_errors() {
    let server = FakeServer::new(3, false);
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let (code, _, err) = run(common::repo_bin(server.root(), &repo).arg("snapshots"));
    // 10: no repository (README, "Exit codes").
    assert_eq!(code, 10, "{err}");
    assert!(err.contains("repository"), "{err}");
    ok(common::repo_bin(server.root(), &repo).arg("init"));
    let (code, _, err) = run(common::repo_bin(server.root(), &repo).arg("init"));
    assert_eq!(code, 1, "init twice: {err}");
    let (code, _, err) = run(common::repo_bin(server.root(), &repo)
        .args(["export", "latest"])
        .arg(work.path()));
    assert_eq!(code, 1);
    assert!(err.contains("no snapshots"), "{err}");
    ok(common::repo_bin(server.root(), &repo).arg("create"));
    let id = common::snapshots(server.root(), &repo)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let listed = ok(common::repo_bin(server.root(), &repo).args(["list", &id[..8]]));
    assert!(
        listed.starts_with(&id[..12]) && listed.contains("contains: configuration, dhcp, file"),
        "{listed}"
    );
    // --repository after the command works like before it.
    let mut c = bin(server.root());
    c.arg("snapshots").arg("--repository").arg(&repo);
    assert!(ok(&mut c).contains(&id[..12]));
}

/// Unchanged files are taken from the parent snapshot without reading them; a file whose
/// content changed is read again even when its size and mtime were put back (its ctime moved).
#[test]
fn parent_snapshot_skips_unchanged_files_but_never_misses_a_change() {
    let server = FakeServer::new(60, false);
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    ok(common::repo_bin(server.root(), &repo).arg("init"));
    ok(common::repo_bin(server.root(), &repo).arg("create"));

    let f = server.p("/var/lib/opsi/config/clients/client0007.example.org.ini");
    let before = std::fs::metadata(&f).unwrap();
    let mut data = std::fs::read(&f).unwrap();
    data[10] ^= 0x01; // same size
    std::fs::write(&f, &data).unwrap();
    common::fake_server::set_mtime(
        &f,
        std::os::unix::fs::MetadataExt::mtime(&before),
        std::os::unix::fs::MetadataExt::mtime_nsec(&before),
    );
    std::fs::write(
        server.p("/var/lib/opsi/config/clients/new.example.org.ini"),
        "[info]\n",
    )
    .unwrap();
    ok(common::repo_bin(server.root(), &repo).arg("create"));
    ok(common::repo_bin(server.root(), &repo).args(["create", "--full"]));

    for snap in [
        "latest",
        &common::snapshots(server.root(), &repo)[1]["id"]
            .as_str()
            .unwrap()[..12],
    ] {
        let target = tempfile::tempdir().unwrap();
        ok(common::repo_bin(target.path(), &repo).args(["restore", snap, "--configuration"]));
        tree::assert_same(
            &server.p("/var/lib/opsi/config"),
            &target.path().join("var/lib/opsi/config"),
        );
    }
    // Every snapshot still agrees with its own CONTROL/checksums.
    for s in common::snapshots(server.root(), &repo) {
        assert_eq!(
            ok(common::repo_bin(server.root(), &repo)
                .arg("verify")
                .arg(&s["id"].as_str().unwrap()[..12]))
            .trim(),
            "Verified"
        );
    }
}

/// Unchanged files take their chunks' index rows from the parent's member list in the index;
/// when that list is damaged the backup looks the chunks up instead and still succeeds.
#[test]
fn damaged_parent_member_list_costs_lookups_not_the_backup() {
    let server = FakeServer::new(20, false);
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    ok(common::repo_bin(server.root(), &repo).arg("init"));
    ok(common::repo_bin(server.root(), &repo).arg("create"));
    let db = rusqlite::Connection::open(repo.join("index.sqlite")).unwrap();
    let damaged = db.execute("UPDATE members SET chunks = x'00'", []).unwrap();
    assert!(damaged > 0);
    drop(db);
    ok(common::repo_bin(server.root(), &repo).arg("create"));
    assert_eq!(
        ok(common::repo_bin(server.root(), &repo).args(["verify", "latest"])).trim(),
        "Verified"
    );
    let target = tempfile::tempdir().unwrap();
    ok(common::repo_bin(target.path(), &repo).args(["restore", "latest", "--configuration"]));
    tree::assert_same(
        &server.p("/var/lib/opsi/config"),
        &target.path().join("var/lib/opsi/config"),
    );
}

/// A restore's first pass reads a large CONTENT file (a dump; here a 17 MiB file of the file
/// backend) on a thread of its own beside the other members: its sha1 still counts against
/// CONTROL/checksums (the restore gives it back whole), and a damaged chunk of it stops the
/// restore before anything is touched.
#[test]
fn the_first_pass_checks_a_large_member_on_its_own_thread() {
    let server = FakeServer::new(10, false);
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let big: Vec<u8> = (0..17 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let big_path = server.p("/var/lib/opsi/config/depots/big.bin");
    std::fs::write(&big_path, &big).unwrap();
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    ok(common::repo_bin(server.root(), &repo).arg("init"));
    ok(common::repo_bin(server.root(), &repo).arg("create"));

    let target = tempfile::tempdir().unwrap();
    ok(common::repo_bin(target.path(), &repo).args(["restore", "latest", "--configuration"]));
    let restored = target.path().join("var/lib/opsi/config/depots/big.bin");
    assert!(
        std::fs::read(&restored).unwrap() == big,
        "the large file differs"
    );

    // A flipped byte in the middle of the largest pack: inside the large file's chunks.
    let pack = common::largest_pack(&repo);
    let mut bytes = std::fs::read(&pack).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    std::fs::write(&pack, &bytes).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let (code, _, err) =
        run(common::repo_bin(fresh.path(), &repo).args(["restore", "latest", "--configuration"]));
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("big.bin"), "{err}");
    assert!(
        std::fs::read_dir(fresh.path()).unwrap().next().is_none(),
        "the failed restore wrote into the root"
    );
}
