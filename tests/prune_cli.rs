//! forget and prune through the command line: restic's retention semantics per host, the
//! settings file's policy, a refusal without policy, dry runs, and prune freeing space while
//! every remaining snapshot still exports byte for byte.

mod common;

use std::path::Path;

use common::fake_server::FakeServer;
use common::{bin, ok, run};

/// (host, day of January 2026) of every snapshot, sorted.
fn days(root: &Path, repo: &Path) -> Vec<(String, u32)> {
    let mut v: Vec<(String, u32)> = common::snapshots(root, repo)
        .iter()
        .map(|s| {
            let t = chrono::DateTime::from_timestamp(s["time"].as_i64().unwrap(), 0)
                .unwrap()
                .with_timezone(&chrono::Local);
            (
                s["host"].as_str().unwrap().to_string(),
                chrono::Datelike::day(&t),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn forget_applies_the_policy_per_host() {
    let server = FakeServer::new(20, false);
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    ok(common::repo_bin(server.root(), &repo).arg("init"));
    // Archives named like the original names them: import takes their time from the name.
    let a = work.path().join("a.tar");
    ok(bin(server.root()).args(["create", "-c", "none"]).arg(&a));
    let b = work.path().join("b.tar");
    ok(bin(server.root())
        .env("OPSI_BACKUP_FQDN", "other.example.org")
        .args(["create", "-c", "none"])
        .arg(&b));
    let mut import = common::repo_bin(server.root(), &repo);
    import.arg("import");
    for day in 1..=10 {
        let p = work
            .path()
            .join(format!("opsiserver_4.3.0.28_2026-01-{day:02}_03-00-00.tar"));
        std::fs::copy(&a, &p).unwrap();
        import.arg(p);
    }
    for day in [2, 5, 9] {
        let p = work
            .path()
            .join(format!("other_4.3.0.28_2026-01-{day:02}_03-00-00.tar"));
        std::fs::copy(&b, &p).unwrap();
        import.arg(p);
    }
    ok(&mut import);
    assert_eq!(days(server.root(), &repo).len(), 13);

    // No policy anywhere: refused, nothing removed.
    let (code, _, err) = run(common::repo_bin(server.root(), &repo).arg("forget"));
    assert_eq!(code, 1);
    assert!(err.contains("no retention policy"), "{err}");
    assert_eq!(days(server.root(), &repo).len(), 13);

    // A dry run lists every snapshot with its fate and reasons.
    let out = ok(common::repo_bin(server.root(), &repo).args([
        "forget",
        "--keep-daily",
        "3",
        "--dry-run",
    ]));
    assert_eq!(out.matches(" keep ").count(), 6, "{out}");
    assert_eq!(out.matches(" remove ").count(), 7, "{out}");
    assert!(out.contains("daily snapshot"), "{out}");
    assert!(out.contains("other.example.org"), "{out}");
    assert_eq!(days(server.root(), &repo).len(), 13);

    // The settings file's policy applies when no keep option is given.
    let settings = server.p("/etc/opsi/opsi-backup.toml");
    std::fs::write(&settings, "[retention]\nkeep_last = 4\n").unwrap();
    let out = ok(common::repo_bin(server.root(), &repo).arg("forget"));
    assert!(out.contains("last snapshot"), "{out}");
    let host = |h: &str, d: &[u32]| -> Vec<(String, u32)> {
        d.iter().map(|d| (h.to_string(), *d)).collect()
    };
    let mut want = host("opsiserver.example.org", &[7, 8, 9, 10]);
    want.extend(host("other.example.org", &[2, 5, 9]));
    want.sort();
    assert_eq!(days(server.root(), &repo), want);

    // Options win over the file; --prune frees what was removed.
    let out = ok(common::repo_bin(server.root(), &repo).args([
        "forget",
        "--keep-daily",
        "1",
        "--keep-within",
        "1d",
        "--prune",
    ]));
    assert!(out.contains("within 1d"), "{out}");
    assert!(out.contains("freed:"), "{out}");
    let mut want = host("opsiserver.example.org", &[9, 10]);
    want.extend(host("other.example.org", &[9]));
    want.sort();
    assert_eq!(days(server.root(), &repo), want);

    // Named snapshots.
    let first = common::snapshots(server.root(), &repo)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    ok(common::repo_bin(server.root(), &repo).args(["forget", &first[..10]]));
    assert_eq!(days(server.root(), &repo).len(), 2);
    ok(common::repo_bin(server.root(), &repo).arg("verify"));
}

/// Text that differs with `seed`: what a changed audit file looks like.
fn audit(seed: u64, lines: usize) -> String {
    let mut x = seed | 1;
    let mut s = String::new();
    for i in 0..lines {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(&format!(
            "[SOFTWARE_{i}]\nname = package-{:x}\nversion = {}.{}\ninstalled = {:016x}\n\n",
            x % 5000,
            x % 97,
            x % 13,
            x
        ));
    }
    s
}

#[test]
fn prune_frees_space_and_keeps_every_snapshot_identical() {
    let server = FakeServer::new(100, true);
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let big = server.p("/var/lib/opsi/config/audit/bigclient.example.org.sw");
    ok(common::repo_bin(server.root(), &repo).arg("init"));
    for night in 0..3u64 {
        std::fs::write(&big, audit(night + 1, 60_000)).unwrap();
        ok(common::repo_bin(server.root(), &repo).arg("create"));
    }
    let ids: Vec<String> = common::snapshots(server.root(), &repo)
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    let export = |id: &str| -> Vec<u8> {
        let p = work.path().join(format!("{id}.tar"));
        ok(common::repo_bin(server.root(), &repo)
            .args(["export", id, "-c", "none"])
            .arg(&p));
        let b = std::fs::read(&p).unwrap();
        std::fs::remove_file(&p).unwrap();
        b
    };
    let before: Vec<Vec<u8>> = ids[1..].iter().map(|id| export(id)).collect();

    ok(common::repo_bin(server.root(), &repo).args(["forget", &ids[0]]));
    let size0 = common::dir_size(&repo.join("packs"));
    let json = |args: &[&str]| -> serde_json::Value {
        serde_json::from_str(&ok(common::repo_bin(server.root(), &repo).args(args))).unwrap()
    };
    let dry = json(&["prune", "--dry-run", "--json"]);
    assert!(dry["bytes_freed"].as_u64().unwrap() > 1_000_000, "{dry}");
    assert_eq!(
        common::dir_size(&repo.join("packs")),
        size0,
        "a dry run changes nothing"
    );

    let out =
        ok(common::repo_bin(server.root(), &repo).args(["prune", "--repack-threshold", "100"]));
    assert!(out.contains("freed: ") && out.contains(" bytes)"), "{out}");
    let size1 = common::dir_size(&repo.join("packs"));
    assert!(size1 + 1_000_000 < size0, "{size0} -> {size1}\n{out}");
    assert!(
        !out.contains(" 0 rewritten"),
        "a pack was rewritten:\n{out}"
    );
    let again = json(&["prune", "--json"]);
    assert_eq!(again["bytes_freed"], 0, "{again}");
    assert_eq!(again["bytes_after"].as_u64().unwrap(), size1);

    for (id, b) in ids[1..].iter().zip(&before) {
        assert!(
            export(id) == *b,
            "snapshot {id} exports differently after prune"
        );
    }
    ok(common::repo_bin(server.root(), &repo).arg("verify"));
}
