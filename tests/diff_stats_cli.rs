//! `diff` answers "what changed since the last good night?" in opsi terms; `stats` sums up
//! the repository.

mod common;

use common::fake_server::FakeServer;
use common::{bin, ok};

#[test]
fn diff_names_clients_products_and_config_files() {
    let server = FakeServer::new(20, false);
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    ok(common::repo_bin(server.root(), &repo).arg("init"));
    ok(common::repo_bin(server.root(), &repo).arg("create"));
    let first = work.path().join("first.tar");
    ok(bin(server.root())
        .args(["create", "-c", "none"])
        .arg(&first));

    let cfg = server.p("/var/lib/opsi/config");
    std::fs::write(
        cfg.join("clients/client0004.example.org.ini"),
        "[info]\ndescription = moved\n",
    )
    .unwrap();
    std::fs::remove_file(cfg.join("audit/client0005.example.org.sw")).unwrap();
    std::fs::write(
        cfg.join("products/newtool_1.0-1.localboot"),
        "[Product]\nid = newtool\n",
    )
    .unwrap();
    std::fs::write(
        server.p("/etc/opsi/opsi.conf"),
        "[groups]\nfileadmingroup = opsifileadmins\n",
    )
    .unwrap();
    ok(common::repo_bin(server.root(), &repo).arg("create"));

    let snaps: serde_json::Value =
        serde_json::from_str(&ok(
            common::repo_bin(server.root(), &repo).args(["snapshots", "--json"])
        ))
        .unwrap();
    let a = snaps[0]["id"].as_str().unwrap()[..10].to_string();
    let out = ok(common::repo_bin(server.root(), &repo).args(["diff", &a, "latest"]));
    for want in [
        "M  CONTENT/BACKENDS/FILE/file/clients/client0004.example.org.ini  (client client0004.example.org)",
        "-  CONTENT/BACKENDS/FILE/file/audit/client0005.example.org.sw  (software audit of client0005.example.org)",
        "+  CONTENT/BACKENDS/FILE/file/products/newtool_1.0-1.localboot  (product newtool_1.0-1.localboot)",
        "M  CONTENT/CONF/opsi.conf  (configuration file /etc/opsi/opsi.conf)",
        // The text lists what the JSON lists, the archive's own checksum list too.
        "M  CONTROL/checksums",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert!(
        !out.contains("client0006"),
        "unchanged clients are not listed:\n{out}"
    );

    // An archive file and a snapshot compare just as well; the same content shows no change.
    let out = ok(common::repo_bin(server.root(), &repo)
        .arg("diff")
        .arg(&first)
        .arg(&a));
    assert!(out.contains("0 added, 0 removed, 0 changed"), "{out}");
    let json: serde_json::Value = serde_json::from_str(&ok(
        common::repo_bin(server.root(), &repo).args(["diff", &a, "latest", "--json"])
    ))
    .unwrap();
    assert!(json["members"].as_array().unwrap().len() >= 4);

    let stats: serde_json::Value =
        serde_json::from_str(&ok(
            common::repo_bin(server.root(), &repo).args(["stats", "--json"])
        ))
        .unwrap();
    assert_eq!(stats["snapshots"], 2);
    assert!(stats["dedup_ratio"].as_f64().unwrap() > 1.5, "{stats}");
    assert_eq!(stats["per_snapshot"].as_array().unwrap().len(), 2);
}
