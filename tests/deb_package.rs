//! The Debian package as README's "Debian package" builds it (contrib/deb/build.sh): every
//! file where Debian and the nightly route expect it, the binary stripped, the /etc files
//! conffiles, the settings and the cron job inactive, lintian without errors.
//! Ignored in the normal suite: it builds a release binary with cargo-deb.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::ok;

/// Builds the package into a scratch directory and returns its path.
fn build_deb(out: &Path) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    ok(Command::new("sh")
        .arg(manifest.join("contrib/deb/build.sh"))
        .arg("--output")
        .arg(out));
    let debs: Vec<PathBuf> = fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "{debs:?}");
    debs[0].clone()
}

#[test]
#[ignore = "builds a release .deb with cargo-deb (~10 min); run with --ignored"]
fn the_debian_package_installs_every_file_where_expected() {
    let scratch = tempfile::tempdir().unwrap();
    let deb = build_deb(scratch.path());
    assert_eq!(
        deb.file_name().unwrap().to_str().unwrap(),
        format!("opsi-backup_{}-1_amd64.deb", env!("CARGO_PKG_VERSION")),
        "the name README's route installs"
    );
    let root = scratch.path().join("root");
    ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    let control = scratch.path().join("control");
    ok(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));

    let mut expected = vec![
        "usr/bin/opsi-backup".to_string(),
        "usr/lib/systemd/system/opsi-backup.service".into(),
        "usr/lib/systemd/system/opsi-backup.timer".into(),
        "etc/cron.d/opsi-backup".into(),
        "etc/opsi/opsi-backup.toml".into(),
        "etc/logrotate.d/opsi-backup".into(),
        "usr/share/doc/opsi-backup/README.md".into(),
        "usr/share/doc/opsi-backup/copyright".into(),
        "usr/share/doc/opsi-backup/examples/opsi-backup.toml".into(),
        "usr/share/bash-completion/completions/opsi-backup".into(),
        "usr/share/zsh/vendor-completions/_opsi-backup".into(),
        "usr/share/fish/vendor_completions.d/opsi-backup.fish".into(),
        "usr/share/man/man1/opsi-backup.1.gz".into(),
    ];
    for c in [
        "create", "list", "verify", "restore", "init", "forget", "prune",
    ] {
        expected.push(format!("usr/share/man/man1/opsi-backup-{c}.1.gz"));
    }
    for f in &expected {
        assert!(root.join(f).is_file(), "the package lacks /{f}");
    }

    // The shipped binary: stripped, runs, and reads its manual from the same definitions.
    let bin = root.join("usr/bin/opsi-backup");
    // readelf comes with binutils, as the strip that cargo-deb needs.
    let sections = ok(Command::new("readelf").arg("-S").arg(&bin));
    assert!(
        !sections.contains(".debug_") && !sections.contains(".symtab"),
        "not stripped:\n{sections}"
    );
    let size = fs::metadata(&bin).unwrap().len();
    assert!(size < 20 << 20, "{size} bytes");
    let version = ok(Command::new(&bin).arg("-V"));
    assert!(version.starts_with(env!("CARGO_PKG_VERSION")), "{version}");

    // Every /etc file is a conffile; installed, nothing is active.
    let conffiles = fs::read_to_string(control.join("conffiles")).unwrap();
    for f in [
        "/etc/cron.d/opsi-backup",
        "/etc/opsi/opsi-backup.toml",
        "/etc/logrotate.d/opsi-backup",
    ] {
        assert!(conffiles.lines().any(|l| l == f), "{f} not in {conffiles}");
    }
    let settings = fs::read_to_string(root.join("etc/opsi/opsi-backup.toml")).unwrap();
    assert!(settings.lines().all(|l| l.is_empty() || l.starts_with('#')));
    let cron = fs::read_to_string(root.join("etc/cron.d/opsi-backup")).unwrap();
    assert!(cron.lines().all(|l| l.starts_with('#') || l.contains('=')));
    let service =
        fs::read_to_string(root.join("usr/lib/systemd/system/opsi-backup.service")).unwrap();
    assert!(service.contains("ExecStart=/usr/bin/opsi-backup create"));
    assert!(
        !control.join("postinst").exists(),
        "nothing is enabled on install"
    );
    // The original (opsi-utils' /usr/bin/opsi-backup) is diverted aside, and back on removal.
    for script in ["preinst", "postrm"] {
        let text = fs::read_to_string(control.join(script)).unwrap();
        assert!(
            text.contains("dpkg-divert --package opsi-backup")
                && text.contains("--divert /usr/bin/opsi-backup.opsi-utils /usr/bin/opsi-backup"),
            "{script}: {text}"
        );
    }

    // lintian, where installed: no errors (README, "Debian package", names the warnings).
    if Command::new("lintian").arg("--version").output().is_ok() {
        let out = Command::new("lintian").arg(&deb).output().unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(
            !report.lines().any(|l| l.starts_with("E:")),
            "lintian:\n{report}"
        );
        eprintln!("lintian:\n{report}");
    } else {
        eprintln!("lintian is not installed: not run (apt-get install lintian)");
    }
}
