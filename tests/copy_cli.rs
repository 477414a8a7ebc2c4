//! `copy`: snapshots of one repository into another, sending only the chunks the target
//! lacks, each checked on arrival; a snapshot copied once (or a copy of it) is skipped.

mod common;

use std::path::Path;

use common::fake_server::FakeServer;
use common::{ok, repo_bin, run};

fn copy(root: &Path, from: &Path, to: &Path, extra: &[&str]) -> serde_json::Value {
    let out = ok(repo_bin(root, to)
        .arg("copy")
        .arg("--from-repository")
        .arg(from)
        .arg("--json")
        .args(extra));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The uncompressed archive of snapshot `id`: what a restore or an admin gets from it.
fn export(root: &Path, repo: &Path, id: &str, dest: &Path) -> Vec<u8> {
    ok(repo_bin(root, repo)
        .args(["export", id])
        .arg(dest)
        .args(["-c", "none", "--no-cache"]));
    std::fs::read(dest).unwrap()
}

fn ids(root: &Path, repo: &Path) -> Vec<String> {
    common::snapshots(root, repo)
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn copy_sends_only_what_the_target_lacks_and_skips_what_it_has() {
    let server = FakeServer::new(30, true);
    let root = server.root();
    let work = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        work.path().join("a"),
        work.path().join("b"),
        work.path().join("c"),
    );
    for r in [&a, &b, &c] {
        ok(repo_bin(root, r).arg("init"));
    }
    ok(repo_bin(root, &a).arg("create"));
    // A night: one client checks in.
    let client = server.p("/var/lib/opsi/config/clients/client0003.example.org.ini");
    std::fs::write(&client, "[info]\ndescription = checked in\n").unwrap();
    ok(repo_bin(root, &a).arg("create"));
    let in_a = common::snapshots(root, &a);

    let first = copy(root, &a, &b, &[]);
    assert_eq!(first["schema"], "opsi-backup/copy/1");
    let copied = first["copied"].as_array().unwrap();
    assert_eq!(copied.len(), 2, "{first}");
    assert!(first["skipped"].as_array().unwrap().is_empty());
    // Same time, host, backends and content as the source's; new ids (another repository).
    for (c, s) in copied.iter().zip(&in_a) {
        assert_eq!(c["from"]["id"], s["id"]);
        for key in [
            "time", "host", "backends", "size", "members", "source", "sysinfo",
        ] {
            assert_eq!(c["to"][key], s[key], "{key}");
        }
        assert_ne!(c["to"]["id"], s["id"]);
    }
    // The first copy sends about the first snapshot; the second only the changed client
    // (and the metadata around it).
    let sent: Vec<u64> = copied
        .iter()
        .map(|c| c["bytes_sent"].as_u64().unwrap())
        .collect();
    let size = in_a[1]["size"].as_u64().unwrap();
    assert!(sent[0] > size / 2, "{sent:?} of {size}");
    assert!(sent[1] < size / 20, "{sent:?} of {size}");
    for (c, s) in copied.iter().zip(&in_a) {
        let from = export(
            root,
            &a,
            s["id"].as_str().unwrap(),
            &work.path().join("x.tar"),
        );
        let to = export(
            root,
            &b,
            c["to"]["id"].as_str().unwrap(),
            &work.path().join("y.tar"),
        );
        assert!(from == to, "the copy exports the same archive");
    }
    ok(repo_bin(root, &b).arg("verify"));

    // Again: nothing to send, nothing written.
    let before = common::dir_size(&b.join("packs"));
    let again = copy(root, &a, &b, &[]);
    assert!(again["copied"].as_array().unwrap().is_empty(), "{again}");
    let skipped = again["skipped"].as_array().unwrap();
    let b_ids = ids(root, &b);
    assert_eq!(skipped.len(), 2);
    assert_eq!(skipped[1]["existing"].as_str().unwrap(), b_ids[1]);
    assert_eq!(common::dir_size(&b.join("packs")), before);

    // A copy of a copy stands for the same snapshot: B → C, then A → C skips both.
    let latest = copy(root, &b, &c, &["latest"]);
    assert_eq!(latest["copied"].as_array().unwrap().len(), 1, "{latest}");
    let from_a = copy(root, &a, &c, &[]);
    assert_eq!(from_a["copied"].as_array().unwrap().len(), 1, "{from_a}");
    assert_eq!(from_a["copied"][0]["from"]["id"], in_a[0]["id"]);
    assert_eq!(from_a["skipped"][0]["from"]["id"], in_a[1]["id"]);
    assert_eq!(ids(root, &c).len(), 2);

    // Into itself: refused, nothing written.
    let (code, _, err) = run(repo_bin(root, &a)
        .arg("copy")
        .arg("--from-repository")
        .arg(&a));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("same repository"), "{err}");
    assert_eq!(ids(root, &a).len(), 2);
}

#[test]
fn a_damaged_source_chunk_stops_the_copy_and_leaves_no_snapshot() {
    let server = FakeServer::new(10, true);
    let root = server.root();
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    ok(repo_bin(root, &a).arg("init"));
    ok(repo_bin(root, &b).arg("init"));
    ok(repo_bin(root, &a).arg("create"));
    let pack = common::largest_pack(&a);
    let mut bytes = std::fs::read(&pack).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x5a;
    std::fs::write(&pack, bytes).unwrap();

    let (code, out, err) = run(repo_bin(root, &b)
        .arg("copy")
        .arg("--from-repository")
        .arg(&a));
    // 3: damage found (README, "Exit codes").
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(err.contains("pack"), "{err}");
    assert!(
        ids(root, &b).is_empty(),
        "no snapshot points at data that did not arrive"
    );
    ok(repo_bin(root, &b).arg("verify"));
}

/// An opsiconfd backup's snapshot copies like any other: the copy exports the same document.
#[test]
fn an_opsiconfd_snapshot_copies_and_exports_the_same_document() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path();
    let (a, b) = (root.join("a"), root.join("b"));
    ok(repo_bin(root, &a).arg("init"));
    ok(repo_bin(root, &b).arg("init"));
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/opsiconfd/opsiconfd-backup.msgpack.lz4");
    ok(repo_bin(root, &a).arg("import").arg(&fixture));
    let done = copy(root, &a, &b, &[]);
    assert_eq!(done["copied"].as_array().unwrap().len(), 1, "{done}");
    assert_eq!(
        done["copied"][0]["to"]["kind"],
        done["copied"][0]["from"]["kind"]
    );
    let export = |repo: &Path, name: &str| {
        let dest = root.join(name);
        ok(repo_bin(root, repo).args(["export", "latest"]).arg(&dest));
        std::fs::read(dest).unwrap()
    };
    assert!(export(&a, "a.msgpack") == export(&b, "b.msgpack"));
    ok(repo_bin(root, &b).args(["verify", "latest"]));
}
