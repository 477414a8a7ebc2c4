//! A pack with a damaged trailer, through the command line: `rebuild-index` keeps every
//! snapshot (the pack's second trailer copy) and they export byte-identical; with both copies
//! damaged it names exactly the snapshots it left out and exits 1.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use common::fake_server::{self, FakeServer, Rng};
use common::{ok, run};

/// Each snapshot exported uncompressed, by id.
fn exports(root: &Path, repo: &Path, dir: &Path, ids: &[String]) -> Vec<Vec<u8>> {
    ids.iter()
        .map(|id| {
            let out = dir.join(format!("{id}.tar"));
            let _ = fs::remove_file(&out);
            ok(common::repo_bin(root, repo)
                .args(["export", id, "-c", "none", "--no-cache"])
                .arg(&out));
            fs::read(&out).unwrap()
        })
        .collect()
}

fn ids(root: &Path, repo: &Path) -> Vec<String> {
    common::snapshots(root, repo)
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn flip(path: &Path, at: usize) {
    let mut b = fs::read(path).unwrap();
    b[at] ^= 0x04;
    fs::write(path, b).unwrap();
}

#[test]
fn rebuild_index_keeps_all_snapshots_of_a_pack_with_a_damaged_trailer() {
    let server = FakeServer::new(30, false);
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    ok(common::repo_bin(server.root(), &repo).arg("init"));
    // Five nights, each with a client of its own: new chunks every night.
    let mut rng = Rng::new(3);
    for night in 0..5 {
        let text: String = (0..4000)
            .map(|i| format!("key{i} = {}\n", rng.next()))
            .collect();
        fake_server::write(
            &server.p(&format!("/var/lib/opsi/config/clients/night{night}.ini")),
            text,
            0o660,
            1_732_000_000 + night,
        );
        ok(common::repo_bin(server.root(), &repo).arg("create"));
    }
    let ids = ids(server.root(), &repo);
    assert_eq!(ids.len(), 5);
    assert!(
        common::pack_files(&repo).len() >= 5,
        "{} packs",
        common::pack_files(&repo).len()
    );
    let before = exports(server.root(), &repo, work.path(), &ids);
    // The cost of the second trailer copy: n + 44 bytes per pack.
    let (mut pack_bytes, mut copy_bytes) = (0, 0);
    for p in common::pack_files(&repo) {
        let b = fs::read(&p).unwrap();
        let n = u32::from_le_bytes(b[b.len() - 12..b.len() - 8].try_into().unwrap()) as usize;
        pack_bytes += b.len();
        copy_bytes += n + 44;
    }
    eprintln!(
        "MEASURE trailer copies: {copy_bytes} of {pack_bytes} pack bytes ({:.2}%)",
        copy_bytes as f64 * 100.0 / pack_bytes as f64
    );
    // The first night's pack: the later nights need its chunks too.
    let pack = common::largest_pack(&repo);
    let good = fs::read(&pack).unwrap();
    let n = good.len();
    let body = u32::from_le_bytes(good[n - 12..n - 8].try_into().unwrap()) as usize;

    for (what, at) in [
        ("body", Some(n - 44 - body / 2)),
        ("hash", Some(n - 40)),
        ("length", Some(n - 11)),
        ("end magic", Some(n - 1)),
        ("truncate -10", None),
    ] {
        fs::write(&pack, &good).unwrap();
        match at {
            Some(at) => flip(&pack, at),
            None => fs::write(&pack, &good[..n - 10]).unwrap(),
        }
        let (code, out, err) = run(common::repo_bin(server.root(), &repo).arg("rebuild-index"));
        assert_eq!(code, 0, "{what}:\n{out}\n{err}");
        assert!(out.contains(", 5 snapshots"), "{what}: {out}");
        assert!(
            err.contains("trailer copy") && !err.contains("LOST"),
            "{what}: {err}"
        );
        assert_eq!(
            exports(server.root(), &repo, work.path(), &ids),
            before,
            "{what}"
        );
    }

    // Double fault: a group's data and both trailer copies.
    fs::write(&pack, &good).unwrap();
    flip(&pack, 8 + 5);
    flip(&pack, n - 44 - body / 2);
    flip(&pack, n - 2 * 44 - body - body / 2);
    let (code, out, err) = run(common::repo_bin(server.root(), &repo).arg("rebuild-index"));
    // 3: damage found, rebuild-index had to leave snapshots out (README, "Exit codes").
    assert_eq!(code, 3, "{out}\n{err}");
    let kept: BTreeSet<String> = self::ids(server.root(), &repo).into_iter().collect();
    let lost: BTreeSet<String> = ids.iter().filter(|i| !kept.contains(*i)).cloned().collect();
    assert!(!lost.is_empty());
    let named: BTreeSet<String> = err
        .lines()
        .filter_map(|l| l.strip_prefix("LOST: snapshot "))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(named, lost, "{err}");
    assert!(
        err.contains("member ") || err.contains("metadata chunks"),
        "{err}"
    );
    let pack_name = pack.file_stem().unwrap().to_string_lossy().into_owned();
    assert!(err.contains(&format!("skipped pack {pack_name}")), "{err}");
    for (i, id) in ids.iter().enumerate() {
        if kept.contains(id) {
            let again = exports(server.root(), &repo, work.path(), std::slice::from_ref(id));
            assert_eq!(again[0], before[i], "snapshot {id}");
        }
    }
}
