//! `--json` as docs/json.md documents it: for every command that reports, stdout is one JSON
//! document with the documented fields and types; times parse as RFC 3339 and match the Unix
//! seconds beside them; `short_id` is the 12-digit prefix of `id`. Plus `snapshots --host` and
//! `--latest`.

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

use common::fake_server::FakeServer;
use common::{bin, ok, repo_bin, run};

/// The JSON types docs/json.md names.
#[derive(Clone, Copy, Debug)]
enum T {
    Str,
    Int,
    Num,
    Bool,
    Arr,
    Obj,
    /// The type, or null.
    Opt(&'static T),
}

fn is(v: &Value, t: T) -> bool {
    match t {
        T::Str => v.is_string(),
        T::Int => v.is_i64() || v.is_u64(),
        T::Num => v.is_number(),
        T::Bool => v.is_boolean(),
        T::Arr => v.is_array(),
        T::Obj => v.is_object(),
        T::Opt(t) => v.is_null() || is(v, *t),
    }
}

/// Every key is there with its type.
fn check(doc: &Value, what: &str, keys: &[(&str, T)]) {
    for (key, t) in keys {
        let v = doc
            .get(key)
            .unwrap_or_else(|| panic!("{what}: no {key:?} in {doc:#}"));
        assert!(is(v, *t), "{what}: {key:?} is not {t:?}: {v}");
    }
}

/// The document's schema is `opsi-backup/<command>/1`.
fn check_schema(doc: &Value, command: &str) {
    assert_eq!(
        doc["schema"],
        format!("opsi-backup/{command}/1"),
        "{command}: {doc:#}"
    );
}

/// `secs` and `rfc` say the same time.
fn check_time(secs: &Value, rfc: &Value) {
    let parsed = chrono::DateTime::parse_from_rfc3339(rfc.as_str().unwrap())
        .unwrap_or_else(|e| panic!("{rfc} is not RFC 3339: {e}"));
    assert_eq!(parsed.timestamp(), secs.as_i64().unwrap(), "{rfc}");
}

/// A snapshot object as every document shows one.
fn check_snapshot(s: &Value) {
    check(
        s,
        "snapshot",
        &[
            ("id", T::Str),
            ("short_id", T::Str),
            ("time", T::Int),
            ("time_rfc3339", T::Str),
            ("host", T::Str),
            ("backends", T::Arr),
            ("size", T::Int),
            ("added", T::Int),
            ("members", T::Int),
            ("source", T::Str),
            ("sysinfo", T::Arr),
            ("written", T::Int),
        ],
    );
    let id = s["id"].as_str().unwrap();
    assert_eq!(id.len(), 64, "{id}");
    assert_eq!(s["short_id"].as_str().unwrap(), &id[..12]);
    check_time(&s["time"], &s["time_rfc3339"]);
}

/// Runs, insists on success, parses stdout as exactly one JSON document.
fn json(cmd: &mut std::process::Command) -> Value {
    let out = ok(cmd);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{out}"))
}

/// A copy of `archive` named as the original names it at `stamp` (import takes its time from
/// the name, in local time: the imports set TZ=UTC).
fn stamped(archive: &Path, dir: &Path, stamp: &str) -> PathBuf {
    let p = dir.join(format!("opsiserver_4.3.0.28_{stamp}.tar"));
    std::fs::copy(archive, &p).unwrap();
    p
}

#[test]
fn every_report_is_one_documented_json_document() {
    let server = FakeServer::new(5, false);
    let root = server.root();
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    ok(repo_bin(root, &repo).arg("init"));

    // create without a repository: the archive written.
    let archive = work.path().join("a.tar");
    let doc = json(
        bin(root)
            .args(["create", "-c", "none", "--json"])
            .arg(&archive),
    );
    check_schema(&doc, "create");
    check(
        &doc,
        "create",
        &[
            ("archive", T::Str),
            ("snapshot", T::Opt(&T::Obj)),
            ("unchanged_files", T::Opt(&T::Int)),
        ],
    );
    assert!(doc["snapshot"].is_null());
    assert!(Path::new(doc["archive"].as_str().unwrap()).is_file());

    // create with a repository, twice: the second has a parent, so unchanged files count.
    let doc = json(repo_bin(root, &repo).args(["create", "--json"]));
    check_schema(&doc, "create");
    check_snapshot(&doc["snapshot"]);
    assert!(doc["archive"].is_null());
    let doc = json(repo_bin(root, &repo).args(["-q", "create", "--json"]));
    check_snapshot(&doc["snapshot"]);
    assert!(doc["unchanged_files"].as_u64().unwrap() > 0, "{doc:#}");
    let second = doc["snapshot"]["id"].as_str().unwrap().to_string();

    // import.
    let dir = tempfile::tempdir_in(work.path()).unwrap();
    let old = stamped(&archive, dir.path(), "2026-01-02_03-00-00");
    let doc = json(
        repo_bin(root, &repo)
            .env("TZ", "UTC")
            .args(["import", "--json"])
            .arg(&old),
    );
    check_schema(&doc, "import");
    check(&doc, "import", &[("imported", T::Arr)]);
    let imported = &doc["imported"][0];
    check(imported, "import item", &[("archive", T::Str)]);
    check_snapshot(&imported["snapshot"]);
    assert_eq!(imported["snapshot"]["time_rfc3339"], "2026-01-02T03:00:00Z");

    // snapshots: the bare array of snapshot objects.
    let doc = json(repo_bin(root, &repo).args(["snapshots", "--json"]));
    let all = doc.as_array().unwrap();
    assert_eq!(all.len(), 3);
    all.iter().for_each(check_snapshot);

    // list, short and --long, of a snapshot and an archive.
    let doc = json(
        repo_bin(root, &repo)
            .args(["list", "--json", "latest"])
            .arg(&archive),
    );
    check_schema(&doc, "list");
    let items = doc["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    for item in items {
        check(
            item,
            "list item",
            &[
                ("archive", T::Opt(&T::Str)),
                ("snapshot", T::Opt(&T::Obj)),
                ("contains", T::Arr),
            ],
        );
        assert!(item.get("members").is_none(), "members only with --long");
    }
    check_snapshot(&items[0]["snapshot"]);
    assert!(items[1]["archive"].is_string());
    let doc = json(
        repo_bin(root, &repo)
            .args(["list", "--long", "--json", "latest"])
            .arg(&archive),
    );
    for item in doc["items"].as_array().unwrap() {
        let members = item["members"].as_array().unwrap();
        assert!(members.len() > 10, "{item:#}");
        for m in members {
            check(
                m,
                "member",
                &[
                    ("path", T::Str),
                    ("type", T::Str),
                    ("mode", T::Int),
                    ("uname", T::Str),
                    ("gname", T::Str),
                    ("size", T::Int),
                    ("mtime", T::Int),
                    ("mtime_rfc3339", T::Str),
                ],
            );
            check_time(&m["mtime"], &m["mtime_rfc3339"]);
            let t = m["type"].as_str().unwrap();
            assert!(
                ["file", "dir", "symlink", "hardlink", "other"].contains(&t),
                "{m}"
            );
        }
    }

    // verify: archives, the repository, one snapshot.
    for args in [
        vec!["verify", "--json", archive.to_str().unwrap()],
        vec!["verify", "--json"],
        vec!["verify", "--json", &second[..8]],
    ] {
        let doc = json(repo_bin(root, &repo).args(&args));
        check_schema(&doc, "verify");
        check(
            &doc,
            "verify",
            &[
                ("ok", T::Bool),
                ("items", T::Arr),
                ("repository", T::Opt(&T::Obj)),
            ],
        );
        assert_eq!(doc["ok"], true, "{args:?}: {doc:#}");
        for item in doc["items"].as_array().unwrap() {
            check(
                item,
                "verify item",
                &[
                    ("archive", T::Opt(&T::Str)),
                    ("snapshot", T::Opt(&T::Obj)),
                    ("ok", T::Bool),
                    ("problems", T::Arr),
                ],
            );
        }
        if !doc["repository"].is_null() {
            check(
                &doc["repository"],
                "verify repository",
                &[
                    ("snapshots", T::Int),
                    ("packs", T::Int),
                    ("chunks", T::Int),
                    ("bytes", T::Int),
                    ("notes", T::Arr),
                ],
            );
        }
    }
    let doc = json(repo_bin(root, &repo).args(["verify", "--json", &second[..8]]));
    check_snapshot(&doc["items"][0]["snapshot"]);

    // export.
    let exported = work.path().join("e.tar");
    let doc = json(
        repo_bin(root, &repo)
            .args(["export", "--json", "-c", "none", "latest"])
            .arg(&exported),
    );
    check_schema(&doc, "export");
    check(&doc, "export", &[("archive", T::Str), ("snapshot", T::Obj)]);
    check_snapshot(&doc["snapshot"]);
    assert!(exported.is_file());

    // diff.
    let doc = json(repo_bin(root, &repo).args(["diff", "--json", &second, "latest"]));
    check_schema(&doc, "diff");
    check(&doc, "diff", &[("members", T::Arr), ("tables", T::Arr)]);

    // stats.
    let doc = json(repo_bin(root, &repo).args(["stats", "--json"]));
    check_schema(&doc, "stats");
    check(
        &doc,
        "stats",
        &[
            ("snapshots", T::Int),
            ("disk_bytes", T::Int),
            ("export_cache_bytes", T::Int),
            ("logical_bytes", T::Int),
            ("dedup_ratio", T::Num),
            ("per_snapshot", T::Arr),
        ],
    );
    doc["per_snapshot"]
        .as_array()
        .unwrap()
        .iter()
        .for_each(check_snapshot);

    // restore, from an archive and from a snapshot, into empty roots.
    let target = tempfile::tempdir().unwrap();
    let doc = json(
        bin(target.path())
            .args(["restore", "--json", "--configuration"])
            .arg(&archive),
    );
    check_schema(&doc, "restore");
    check(
        &doc,
        "restore",
        &[
            ("archive", T::Opt(&T::Str)),
            ("snapshot", T::Opt(&T::Obj)),
            ("restored", T::Arr),
            ("new_server_id", T::Opt(&T::Str)),
        ],
    );
    let restored = doc["restored"].as_array().unwrap();
    assert!(!restored.is_empty(), "{doc:#}");
    for part in restored {
        check(
            part,
            "restored part",
            &[("prefix", T::Str), ("destination", T::Str)],
        );
    }
    let target = tempfile::tempdir().unwrap();
    let doc = json(repo_bin(target.path(), &repo).args([
        "restore",
        "--json",
        "--configuration",
        "latest",
    ]));
    check_snapshot(&doc["snapshot"]);

    // forget: a dry run of a policy, then the named snapshot with --prune.
    let doc =
        json(repo_bin(root, &repo).args(["forget", "--json", "--dry-run", "--keep-last", "1"]));
    check_schema(&doc, "forget");
    check(
        &doc,
        "forget",
        &[
            ("dry_run", T::Bool),
            ("decisions", T::Arr),
            ("removed", T::Int),
            ("refused", T::Opt(&T::Str)),
            ("prune", T::Opt(&T::Obj)),
        ],
    );
    let decisions = doc["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), 3);
    for d in decisions {
        check(
            d,
            "decision",
            &[
                ("id", T::Str),
                ("short_id", T::Str),
                ("time", T::Int),
                ("time_rfc3339", T::Str),
                ("host", T::Str),
                ("keep", T::Bool),
                ("reasons", T::Arr),
            ],
        );
        check_time(&d["time"], &d["time_rfc3339"]);
    }
    assert_eq!(doc["removed"], 0);
    let doc = json(repo_bin(root, &repo).args(["forget", "--json", "--prune", &second]));
    assert_eq!(doc["removed"], 1, "{doc:#}");
    assert_eq!(doc["decisions"][0]["id"], second.as_str());
    check(&doc["prune"], "forget prune", &[("bytes_freed", T::Int)]);

    // prune.
    let doc = json(repo_bin(root, &repo).args(["prune", "--json", "--dry-run"]));
    check_schema(&doc, "prune");
    check(
        &doc,
        "prune",
        &[
            ("dry_run", T::Bool),
            ("snapshots", T::Int),
            ("packs_before", T::Int),
            ("packs_deleted", T::Int),
            ("bytes_freed", T::Int),
            ("bytes_after", T::Int),
        ],
    );
}

#[test]
fn with_json_stdout_holds_nothing_on_error() {
    let server = FakeServer::new(1, false);
    let work = tempfile::tempdir().unwrap();
    let missing = work.path().join("missing");
    let (code, out, err) = run(repo_bin(server.root(), &missing).args(["snapshots", "--json"]));
    assert_ne!(code, 0);
    assert_eq!(out, "");
    assert!(err.contains("ERROR: "), "{err}");
}

#[test]
fn snapshots_by_host_and_the_latest_per_host() {
    let server = FakeServer::new(2, false);
    let root = server.root();
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    ok(repo_bin(root, &repo).arg("init"));
    let mine = work.path().join("mine.tar");
    ok(bin(root).args(["create", "-c", "none"]).arg(&mine));
    let other = work.path().join("other.tar");
    ok(bin(root)
        .env("OPSI_BACKUP_FQDN", "other.example.org")
        .args(["create", "-c", "none"])
        .arg(&other));
    for (archive, stamps) in [
        (
            &mine,
            [
                "2026-01-01_03-00-00",
                "2026-01-02_03-00-00",
                "2026-01-03_03-00-00",
            ],
        ),
        (
            &other,
            [
                "2026-01-01_04-00-00",
                "2026-01-02_04-00-00",
                "2026-01-04_04-00-00",
            ],
        ),
    ] {
        for stamp in stamps {
            let dir = tempfile::tempdir_in(work.path()).unwrap();
            // The archive's name is read in local time: UTC, for the times below.
            ok(repo_bin(root, &repo)
                .env("TZ", "UTC")
                .arg("import")
                .arg(stamped(archive, dir.path(), stamp)));
        }
    }
    let list = |args: &[&str]| -> Vec<(String, String)> {
        json(
            repo_bin(root, &repo)
                .arg("snapshots")
                .arg("--json")
                .args(args),
        )
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["host"].as_str().unwrap().to_string(),
                s["time_rfc3339"].as_str().unwrap().to_string(),
            )
        })
        .collect()
    };
    let pair = |h: &str, t: &str| (h.to_string(), t.to_string());
    assert_eq!(list(&[]).len(), 6);
    assert_eq!(
        list(&["--host", "other.example.org"]),
        vec![
            pair("other.example.org", "2026-01-01T04:00:00Z"),
            pair("other.example.org", "2026-01-02T04:00:00Z"),
            pair("other.example.org", "2026-01-04T04:00:00Z"),
        ]
    );
    // The N newest of each host, still oldest first.
    assert_eq!(
        list(&["--latest", "1"]),
        vec![
            pair("opsiserver.example.org", "2026-01-03T03:00:00Z"),
            pair("other.example.org", "2026-01-04T04:00:00Z"),
        ]
    );
    assert_eq!(
        list(&["--latest", "2", "--host", "opsiserver.example.org"]),
        vec![
            pair("opsiserver.example.org", "2026-01-02T03:00:00Z"),
            pair("opsiserver.example.org", "2026-01-03T03:00:00Z"),
        ]
    );
    assert!(list(&["--host", "nobody.example.org"]).is_empty());
    // The table for people filters the same way.
    let out = ok(repo_bin(root, &repo).args(["snapshots", "--latest", "1"]));
    assert!(out.contains("2 snapshots"), "{out}");
}

#[test]
fn a_damaged_archive_is_reported_in_the_document_not_as_an_error() {
    let server = FakeServer::new(2, false);
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("a.tar");
    ok(bin(server.root())
        .args(["create", "-c", "none"])
        .arg(&archive));
    // A byte of a member's content changed: its sha1 no longer matches CONTROL/checksums.
    let mut bytes = std::fs::read(&archive).unwrap();
    let at = bytes
        .windows(4)
        .position(|w| w == b"[Pro" || w == b"[pro" || w == b"[Loc" || w == b"[gen")
        .expect("an .ini member's content");
    bytes[at + 1] ^= 0x20;
    std::fs::write(&archive, &bytes).unwrap();
    let (code, out, err) = run(bin(server.root()).args(["verify", "--json"]).arg(&archive));
    assert_eq!(code, 1, "{out}{err}");
    let doc: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    check_schema(&doc, "verify");
    assert_eq!(doc["ok"], false, "{doc:#}");
    assert_eq!(doc["items"][0]["ok"], false, "{doc:#}");
    assert!(
        !doc["items"][0]["problems"].as_array().unwrap().is_empty(),
        "{doc:#}"
    );
    assert!(err.contains("ERROR: "), "{err}");
}

#[test]
fn copy_reports_one_documented_json_document() {
    let server = FakeServer::new(3, false);
    let root = server.root();
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    ok(repo_bin(root, &a).arg("init"));
    ok(repo_bin(root, &b).arg("init"));
    ok(repo_bin(root, &a).arg("create"));
    let copy = |extra: &[&str]| {
        json(
            repo_bin(root, &b)
                .args(["copy", "--json", "--from-repository"])
                .arg(&a)
                .args(extra),
        )
    };
    let doc = copy(&["-q"]);
    check_schema(&doc, "copy");
    check(&doc, "copy", &[("copied", T::Arr), ("skipped", T::Arr)]);
    let item = &doc["copied"][0];
    check(
        item,
        "copied item",
        &[("chunks_sent", T::Int), ("bytes_sent", T::Int)],
    );
    check_snapshot(&item["from"]);
    check_snapshot(&item["to"]);
    let doc = copy(&[]);
    let item = &doc["skipped"][0];
    check(item, "skipped item", &[("existing", T::Str)]);
    check_snapshot(&item["from"]);
    assert_eq!(item["existing"], common::snapshots(root, &b)[0]["id"]);
}
