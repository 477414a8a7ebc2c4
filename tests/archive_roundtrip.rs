//! create -> verify -> list -> restore into an empty root gives back the identical tree.

mod common;

use common::fake_server::FakeServer;
use common::{bin, ok, run, tree};

#[test]
fn create_verify_list_restore_round_trip() {
    let server = FakeServer::new(300, true);
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("backup.tar.bz2");
    ok(bin(server.root()).arg("create").arg(&archive));

    let mode = std::fs::metadata(&archive).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    let leftovers: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "only the archive is left: {leftovers:?}"
    );

    let verified = ok(bin(server.root()).arg("verify").arg(&archive));
    assert_eq!(verified.trim(), "Verified");
    let listed = ok(bin(server.root()).arg("list").arg(&archive));
    assert!(
        listed
            .trim()
            .ends_with("contains: configuration, dhcp, file"),
        "{listed}"
    );

    let target = tempfile::tempdir().unwrap();
    ok(bin(target.path())
        .args(["restore", "--configuration"])
        .arg(&archive));
    for sub in ["etc/opsi", "var/lib/opsi/config"] {
        tree::assert_same(&server.root().join(sub), &target.path().join(sub));
    }
    let a = std::fs::read(server.p("/etc/dhcp/dhcpd.conf")).unwrap();
    assert_eq!(
        a,
        std::fs::read(target.path().join("etc/dhcp/dhcpd.conf")).unwrap()
    );
}

#[test]
fn archives_in_every_compression_are_detected_from_content() {
    let server = FakeServer::new(5, false);
    let out = tempfile::tempdir().unwrap();
    for (c, magic) in [
        ("bz2", &b"BZh"[..]),
        ("gz", &[0x1f, 0x8b][..]),
        ("none", &b"././@PaxHeader"[..]),
    ] {
        // A misleading name: readers must look at the bytes.
        let archive = out.path().join(format!("backup-{c}.bin"));
        ok(bin(server.root()).args(["create", "-c", c]).arg(&archive));
        let head = std::fs::read(&archive).unwrap();
        assert!(head.starts_with(magic), "{c}");
        assert_eq!(
            ok(bin(server.root()).arg("verify").arg(&archive)).trim(),
            "Verified"
        );
    }
}

#[test]
fn generated_name_in_existing_directory() {
    let server = FakeServer::new(3, false);
    let out = tempfile::tempdir().unwrap();
    ok(bin(server.root())
        .args(["create", "-c", "gz"])
        .arg(out.path()));
    let names: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1);
    let n = &names[0];
    assert!(
        n.starts_with("opsiserver_4.3.0.28_") && n.ends_with(".tar.gz"),
        "{n}"
    );
    let stamp = &n["opsiserver_4.3.0.28_".len()..n.len() - ".tar.gz".len()];
    assert!(
        stamp.len() >= 19 && !stamp.contains(':') && !stamp.contains(' '),
        "{stamp}"
    );
}

#[test]
fn restore_refuses_other_system_without_terminal_unless_forced() {
    let server = FakeServer::new(3, false);
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("b.tar");
    ok(bin(server.root())
        .args(["create", "-c", "none"])
        .arg(&archive));
    let target = tempfile::tempdir().unwrap();
    let (code, _, err) = run(bin(target.path())
        .env("OPSI_BACKUP_FQDN", "other.example.org")
        .args(["restore", "--configuration"])
        .arg(&archive));
    assert_eq!(code, 1);
    assert!(err.contains("fqdn") && err.contains("--force"), "{err}");
    assert!(!target.path().join("etc/opsi").exists(), "nothing restored");
    ok(bin(target.path())
        .env("OPSI_BACKUP_FQDN", "other.example.org")
        .args(["restore", "--configuration", "--force"])
        .arg(&archive));
    assert!(target.path().join("etc/opsi/backends/file.conf").exists());
}

/// Restoring the backends onto the same server puts the file backend back exactly as it was
/// backed up (files created since are gone, changed ones restored) and leaves /etc/opsi alone
/// unless --configuration is given.
#[test]
fn restore_backends_over_a_changed_server() {
    let server = FakeServer::new(20, false);
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("night.tar.bz2");
    ok(bin(server.root()).arg("create").arg(&archive));
    let backed_up = tree::read(&server.p("/var/lib/opsi/config"));

    std::fs::write(
        server.p("/var/lib/opsi/config/clients/new.example.org.ini"),
        "[info]\n",
    )
    .unwrap();
    std::fs::write(
        server.p("/var/lib/opsi/config/clients/client0001.example.org.ini"),
        "changed",
    )
    .unwrap();
    std::fs::write(server.p("/etc/dhcp/dhcpd.conf"), "broken").unwrap();
    std::fs::write(server.p("/etc/opsi/opsi.conf"), "edited after the backup").unwrap();

    ok(bin(server.root()).arg("restore").arg(&archive));
    assert_eq!(tree::read(&server.p("/var/lib/opsi/config")), backed_up);
    assert!(std::fs::read_to_string(server.p("/etc/dhcp/dhcpd.conf"))
        .unwrap()
        .contains("subnet"));
    assert_eq!(
        std::fs::read_to_string(server.p("/etc/opsi/opsi.conf")).unwrap(),
        "edited after the backup"
    );
    let siblings: Vec<_> = std::fs::read_dir(server.p("/var/lib/opsi"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        siblings.len(),
        1,
        "no staging or old copies left: {siblings:?}"
    );

    // An explicit backend the archive lacks is an error; nothing changes.
    let (code, _, err) = run(bin(server.root())
        .args(["restore", "--backends", "mysql"])
        .arg(&archive));
    assert_eq!(code, 1);
    assert!(err.contains("does not contain mysql backend data"), "{err}");
}

/// A file backend whose base directory is a symlink to another disk is restored where the link
/// points; the link stays.
#[test]
fn restore_follows_a_symlinked_base_directory() {
    let server = FakeServer::new(5, false);
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("a.tar.gz");
    ok(bin(server.root())
        .args(["create", "-c", "gz"])
        .arg(&archive));
    let backed_up = tree::read(&server.p("/var/lib/opsi/config"));

    let target = tempfile::tempdir().unwrap();
    ok(bin(target.path())
        .args(["restore", "--configuration", "--force"])
        .arg(&archive));
    let data = target.path().join("data/opsi-config");
    std::fs::create_dir_all(data.parent().unwrap()).unwrap();
    std::fs::rename(target.path().join("var/lib/opsi/config"), &data).unwrap();
    std::os::unix::fs::symlink(&data, target.path().join("var/lib/opsi/config")).unwrap();
    std::fs::write(data.join("clients/stale.example.org.ini"), "x").unwrap();

    ok(bin(target.path())
        .args(["restore", "--force"])
        .arg(&archive));
    let link = std::fs::symlink_metadata(target.path().join("var/lib/opsi/config")).unwrap();
    assert!(link.file_type().is_symlink(), "the symlink was replaced");
    assert_eq!(tree::read(&data), backed_up);
}
