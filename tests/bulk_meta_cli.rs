//! Bulk data as it was on disk: hard links, extended attributes and POSIX ACLs survive
//! create → restore (the whole depot and one product) and create → export (the data tar, read
//! by Python's tarfile and extracted by GNU tar); an archive smuggling `DATA/` members is not
//! imported; `stats` names what each product costs. Runs as root on ext4 (xattrs in the
//! `trusted.` namespace need root).

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use common::fake_server::{set_mtime, write, FakeServer, SERVER};
use common::{ok, repo_bin, run};

const T0: i64 = 1_733_000_000;

fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Linux's binary ACL: version 2, then (tag, perm, id) entries.
fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

const NONE: u32 = u32::MAX;

/// user::rw-, user:1234:r--, group::r--, mask::r--, other::---
fn file_acl() -> Vec<u8> {
    acl(&[
        (0x01, 6, NONE),
        (0x02, 4, 1234),
        (0x04, 4, NONE),
        (0x10, 4, NONE),
        (0x20, 0, NONE),
    ])
}

/// user::rwx, group::r-x, group:2345:rwx, mask::rwx, other::r-x
fn dir_default_acl() -> Vec<u8> {
    acl(&[
        (0x01, 7, NONE),
        (0x04, 5, NONE),
        (0x08, 7, 2345),
        (0x10, 7, NONE),
        (0x20, 5, NONE),
    ])
}

/// A depot with two products: win10 has a file under two names (one inode) and attributes
/// on files and a directory; firefox has a third link to the same inode (another product).
fn server() -> FakeServer {
    let s = FakeServer::new(2, false);
    write(
        &s.p(&format!("/var/lib/opsi/config/depots/{SERVER}.ini")),
        "[depotserver]\ndepotlocalurl = file:///var/lib/opsi/depot\n\
         repositorylocalurl = file:///var/lib/opsi/repository\n\
         workbenchlocalurl = file:///var/lib/opsi/workbench\nisMasterDepot = True\n",
        0o660,
        T0,
    );
    let d = s.p("/var/lib/opsi/depot");
    write(
        &d.join("win10/installfiles/setup.exe"),
        noise(1, 300_000),
        0o755,
        T0,
    );
    fs::create_dir_all(d.join("win10/copy")).unwrap();
    fs::hard_link(
        d.join("win10/installfiles/setup.exe"),
        d.join("win10/copy/setup.exe"),
    )
    .unwrap();
    write(&d.join("win10/setup.opsiscript"), "Message x\n", 0o664, T0);
    write(&d.join("firefox/ff.exe"), noise(2, 200_000), 0o644, T0);
    fs::hard_link(
        d.join("win10/installfiles/setup.exe"),
        d.join("firefox/shared.exe"),
    )
    .unwrap();
    let script = d.join("win10/setup.opsiscript");
    xattr::set(&script, "user.comment", b"made by the packager").unwrap();
    xattr::set(&script, "trusted.opsi", b"\x00\x01binary\xff").unwrap();
    xattr::set(&script, "security.opsi", b"label").unwrap();
    xattr::set(&script, "system.posix_acl_access", &file_acl()).unwrap();
    xattr::set(
        d.join("win10"),
        "system.posix_acl_default",
        &dir_default_acl(),
    )
    .unwrap();
    xattr::set(d.join("win10"), "user.samba", b"share").unwrap();
    xattr::set(d.join("firefox/ff.exe"), "user.vendor", b"Mozilla").unwrap();
    for e in walkdir::WalkDir::new(&d) {
        let e = e.unwrap();
        if e.file_type().is_dir() {
            set_mtime(e.path(), T0 + 7, 250_000_000);
        }
    }
    s
}

/// Every extended attribute of `p`, sorted.
fn xattrs(p: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = xattr::list(p)
        .unwrap()
        .map(|n| {
            let v = xattr::get(p, &n).unwrap().unwrap();
            (n.to_string_lossy().into_owned(), v)
        })
        .collect();
    v.sort();
    v
}

fn ino(p: &Path) -> u64 {
    fs::metadata(p).unwrap().ino()
}

/// What the test compares after a restore: the attributes and the link structure.
fn check_as_it_was(d: &Path) {
    let script = d.join("win10/setup.opsiscript");
    let x = xattrs(&script);
    assert_eq!(
        x,
        vec![
            ("security.opsi".to_string(), b"label".to_vec()),
            ("system.posix_acl_access".to_string(), file_acl()),
            ("trusted.opsi".to_string(), b"\x00\x01binary\xff".to_vec()),
            ("user.comment".to_string(), b"made by the packager".to_vec()),
        ]
    );
    assert_eq!(
        xattrs(&d.join("win10")),
        vec![
            ("system.posix_acl_default".to_string(), dir_default_acl()),
            ("user.samba".to_string(), b"share".to_vec()),
        ]
    );
    assert_eq!(
        ino(&d.join("win10/installfiles/setup.exe")),
        ino(&d.join("win10/copy/setup.exe")),
        "the hard link within the product is one file again"
    );
    // A file without attributes stays without, though its new directory has a default ACL.
    assert!(xattrs(&d.join("win10/installfiles/setup.exe")).is_empty());
}

#[test]
fn hard_links_xattrs_and_acls_survive_restore_and_export() {
    let s = server();
    let root = s.root();
    let repo = tempfile::tempdir().unwrap();
    let repo = repo.path().join("r");
    ok(repo_bin(root, &repo).arg("init"));
    let depot = s.p("/var/lib/opsi/depot");
    check_as_it_was(&depot);
    ok(repo_bin(root, &repo).args(["create", "--backends", "depot"]));

    // The member list: the second name is a hard link, the link across products a file.
    let out = ok(repo_bin(root, &repo).args(["list", "latest", "--long", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let kind_of = |path: &str| {
        v["items"][0]["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["path"] == path)
            .map(|m| m["type"].as_str().unwrap().to_string())
            .unwrap()
    };
    let mut kinds = [
        kind_of("DATA/DEPOT/win10/installfiles/setup.exe"),
        kind_of("DATA/DEPOT/win10/copy/setup.exe"),
    ];
    kinds.sort();
    assert_eq!(kinds, ["file", "hardlink"]);
    assert_eq!(kind_of("DATA/DEPOT/firefox/shared.exe"), "file");
    let script_entry = v["items"][0]["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["path"] == "DATA/DEPOT/win10/setup.opsiscript")
        .unwrap()
        .clone();
    assert_eq!(
        script_entry["xattrs"],
        serde_json::json!([
            "security.opsi",
            "system.posix_acl_access",
            "trusted.opsi",
            "user.comment"
        ])
    );

    // The whole depot, gone and restored.
    fs::remove_dir_all(&depot).unwrap();
    ok(repo_bin(root, &repo).args(["restore", "latest", "--backends", "depot", "--force"]));
    check_as_it_was(&depot);
    let shared = depot.join("firefox/shared.exe");
    assert_eq!(
        fs::read(&shared).unwrap(),
        fs::read(depot.join("win10/copy/setup.exe")).unwrap()
    );
    assert_ne!(ino(&shared), ino(&depot.join("win10/copy/setup.exe")));
    assert_eq!(
        fs::metadata(depot.join("win10/copy/setup.exe"))
            .unwrap()
            .nlink(),
        2,
        "the link across products came back as a file of its own"
    );

    // One product, after the attributes were changed.
    let script = depot.join("win10/setup.opsiscript");
    xattr::remove(&script, "user.comment").unwrap();
    xattr::set(&script, "user.added", b"later").unwrap();
    fs::remove_file(depot.join("win10/copy/setup.exe")).unwrap();
    ok(repo_bin(root, &repo).args([
        "restore",
        "latest",
        "--backends",
        "depot",
        "--product",
        "win10",
        "--force",
    ]));
    check_as_it_was(&depot);

    // Export: the data tar has the hard link as a tar hard link and the attributes as PAX
    // records; Python reads them, GNU tar extracts them back.
    let out_dir = tempfile::tempdir().unwrap();
    let archive = out_dir.path().join("opsiserver.tar.bz2");
    ok(repo_bin(root, &repo)
        .args(["export", "latest"])
        .arg(&archive));
    let tar = out_dir.path().join("opsiserver.depot.tar");
    let check = r#"
import sys, tarfile
t = tarfile.open(sys.argv[1])
links = {m.name: m.linkname for m in t.getmembers() if m.islnk()}
assert links == {"depot/win10/copy/setup.exe": "depot/win10/installfiles/setup.exe"} or \
       links == {"depot/win10/installfiles/setup.exe": "depot/win10/copy/setup.exe"}, links
m = t.getmember("depot/win10/setup.opsiscript")
h = m.pax_headers
assert h["SCHILY.xattr.user.comment"] == "made by the packager", h
assert h["SCHILY.acl.access"] == "user::rw-,user:1234:r--,group::r--,mask::r--,other::---", h
assert "SCHILY.xattr.system.posix_acl_access" in h, h
d = t.getmember("depot/win10").pax_headers
assert d["SCHILY.acl.default"] == "user::rwx,group::r-x,group:2345:rwx,mask::rwx,other::r-x", d
assert not t.getmember("depot/firefox/shared.exe").islnk()
print("ok")
"#;
    let py = Command::new("python3")
        .args(["-c", check])
        .arg(&tar)
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let x = tempfile::tempdir().unwrap();
    let gnu = Command::new("tar")
        .args([
            "--xattrs",
            "--xattrs-include=*",
            "--acls",
            "--same-permissions",
            "-xf",
        ])
        .arg(&tar)
        .arg("-C")
        .arg(x.path())
        .output()
        .unwrap();
    assert!(
        gnu.status.success(),
        "{}",
        String::from_utf8_lossy(&gnu.stderr)
    );
    check_as_it_was(&x.path().join("depot"));

    // The next night: an ACL changed (its ctime moved, so the file is not taken from the
    // parent) is a metadata change for diff, and the new snapshot has the new ACL.
    let script = depot.join("win10/setup.opsiscript");
    let mut changed = file_acl();
    changed[14] = 6; // user:1234 gets rw- (entry 2: tag at 12, perm at 14)
    xattr::set(&script, "system.posix_acl_access", &changed).unwrap();
    let out = ok(repo_bin(root, &repo).args(["create", "--backends", "depot", "--json"]));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(report["unchanged_files"].as_u64().unwrap() > 0, "{out}");
    let ids: Vec<String> = common::snapshots(root, &repo)
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    let out = ok(repo_bin(root, &repo).args(["diff", &ids[0], &ids[1]]));
    // (The depot's own directory changed its mtime with the product restore above.)
    let lines: Vec<&str> = out.lines().filter(|l| l.contains("DATA/DEPOT/")).collect();
    assert!(
        lines.len() == 1 && lines[0].contains("U") && lines[0].contains("win10/setup.opsiscript"),
        "{out}"
    );
    fs::remove_dir_all(depot.join("win10")).unwrap();
    ok(repo_bin(root, &repo).args([
        "restore",
        "latest",
        "--backends",
        "depot",
        "--product",
        "win10",
        "--force",
    ]));
    assert_eq!(
        xattr::get(&script, "system.posix_acl_access").unwrap(),
        Some(changed)
    );
    // A night with nothing changed since the product restore above (the depot alone):
    // firefox's two files are taken from the parent unread (win10's are new inodes), and
    // their records still have their attributes (read from the file system, not the parent).
    let out = ok(repo_bin(root, &repo).args([
        "create",
        "--backends",
        "depot",
        "--no-configuration",
        "--json",
    ]));
    let night3: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(night3["unchanged_files"], 2, "{out}");
    fs::remove_dir_all(depot.join("firefox")).unwrap();
    ok(repo_bin(root, &repo).args(["restore", "latest", "--backends", "depot", "--force"]));
    assert_eq!(
        xattrs(&depot.join("firefox/ff.exe")),
        vec![("user.vendor".to_string(), b"Mozilla".to_vec())]
    );
}

/// A restore into a tree whose hard link points outside it, or through `..`, is refused
/// before anything is swapped in. (A repository of our own never holds one; the member
/// stream is the restorer's input, tested in src/restore/restorer.rs.) Here: an archive with
/// `DATA/` members is not imported at all.
#[test]
fn an_archive_with_bulk_data_members_is_not_imported() {
    let s = server();
    let root = s.root();
    let repo = tempfile::tempdir().unwrap();
    let repo = repo.path().join("r");
    ok(repo_bin(root, &repo).arg("init"));
    let out_dir = tempfile::tempdir().unwrap();
    let archive = out_dir.path().join("opsiserver.tar.bz2");
    ok(common::bin(root).arg("create").arg(&archive));
    // The original archive, with one more member: a file for the depot.
    let evil = out_dir.path().join("opsiserver_4.3_20240101_0300.tar");
    let smuggle = r#"
import io, sys, tarfile
src = tarfile.open(sys.argv[1])
with tarfile.open(sys.argv[2], "w", format=tarfile.PAX_FORMAT) as out:
    for m in src.getmembers():
        out.addfile(m, src.extractfile(m) if m.isfile() else None)
    data = b"echo owned\n"
    m = tarfile.TarInfo(sys.argv[3])
    m.size = len(data)
    out.addfile(m, io.BytesIO(data))
"#;
    for name in [
        "DATA/DEPOT/win10/setup.opsiscript",
        "./DATA/TFTP/grub.efi",
        "DATA",
    ] {
        let py = Command::new("python3")
            .args(["-c", smuggle])
            .arg(&archive)
            .arg(&evil)
            .arg(name)
            .output()
            .unwrap();
        assert!(
            py.status.success(),
            "{}",
            String::from_utf8_lossy(&py.stderr)
        );
        let (code, _, err) = run(repo_bin(root, &repo).arg("import").arg(&evil));
        assert_ne!(code, 0, "{name}");
        assert!(
            err.contains(&format!("holds member {name}"))
                && err.contains("bulk data (DATA/) is never part of an opsi-backup archive"),
            "{err}"
        );
        assert!(
            common::snapshots(root, &repo).is_empty(),
            "nothing imported"
        );
    }
    // The same archive without the extra member imports.
    ok(repo_bin(root, &repo).arg("import").arg(&archive));
    assert_eq!(common::snapshots(root, &repo).len(), 1);
}

/// `stats SNAPSHOT`: per product its files, size, the stored bytes only it uses and those it
/// shares; the products' own bytes and the shared ones (counted once) add up.
#[test]
fn stats_per_product_add_up() {
    let s = server();
    let root = s.root();
    let dir = tempfile::tempdir().unwrap();
    // An encrypted repository too: its chunks are sealed, the figures the same in kind.
    let password = dir.path().join("password");
    fs::write(&password, "correct horse").unwrap();
    let encrypted = dir.path().join("enc");
    ok(repo_bin(root, &encrypted)
        .args(["init", "--encrypt", "--password-file"])
        .arg(&password));
    ok(repo_bin(root, &encrypted)
        .args(["create", "--backends", "depot", "--password-file"])
        .arg(&password));
    let out = ok(repo_bin(root, &encrypted)
        .args(["stats", "latest", "--json", "--password-file"])
        .arg(&password));
    check_costs(&out);

    let repo = dir.path().join("r");
    ok(repo_bin(root, &repo).arg("init"));
    ok(repo_bin(root, &repo).args(["create", "--backends", "depot"]));
    let out = ok(repo_bin(root, &repo).args(["stats", "latest", "--json"]));
    check_costs(&out);
    // Without a snapshot there is no breakdown; the text names the products.
    let out = ok(repo_bin(root, &repo).args(["stats", "--json"]));
    assert!(
        out.contains("\"bulk_data\":null") || out.contains("\"bulk_data\": null"),
        "{out}"
    );
    let out = ok(repo_bin(root, &repo).args(["stats", "latest"]));
    assert!(
        out.contains("bulk data of snapshot") && out.contains("win10") && out.contains("SHARED"),
        "{out}"
    );
}

/// The figures of `stats latest --json` for the server's depot.
fn check_costs(out: &str) {
    let v: serde_json::Value = serde_json::from_str(out).unwrap();
    let b = &v["bulk_data"];
    let products = b["products"].as_array().unwrap();
    let names: Vec<_> = products
        .iter()
        .map(|p| format!("{}/{}", p["part"].as_str().unwrap(), p["product"]))
        .collect();
    assert_eq!(names, ["depot/\"firefox\"", "depot/\"win10\""], "{out}");
    let (ff, win) = (&products[0], &products[1]);
    let n = |v: &serde_json::Value| v.as_u64().unwrap();
    // The second name of setup.exe is a hard link, not a file; firefox's link to it is one.
    assert_eq!((n(&win["files"]), n(&win["size"])), (2, 300_000 + 10));
    assert_eq!((n(&ff["files"]), n(&ff["size"])), (2, 200_000 + 300_000));
    // Noise does not compress: each figure is about the plain bytes behind it.
    let near = |got: u64, want: u64| got >= want && got <= want + want / 20;
    assert!(near(n(&ff["own_bytes"]), 200_000), "{out}");
    assert!(near(n(&b["shared_bytes"]), 300_000), "{out}");
    assert!(
        n(&win["own_bytes"]) < 1000,
        "only the script is win10's own: {out}"
    );
    assert_eq!(n(&ff["shared_bytes"]), n(&b["shared_bytes"]));
    assert_eq!(n(&win["shared_bytes"]), n(&b["shared_bytes"]));
    assert_eq!(
        n(&ff["own_bytes"]) + n(&win["own_bytes"]) + n(&b["shared_bytes"]),
        n(&b["stored_bytes"])
    );
}
