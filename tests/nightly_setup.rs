//! The nightly setup shipped in contrib/ works as documented: with the sample settings file
//! in /etc/opsi/opsi-backup.toml, the cron line and the systemd service's commands create a
//! snapshot and apply the retention policy, night after night.

mod common;

use std::path::Path;
use std::process::Command;

use common::fake_server::FakeServer;

fn contrib(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("contrib")
            .join(name),
    )
    .unwrap()
}

fn snapshot_count(root: &Path) -> usize {
    let out = Command::new(env!("CARGO_BIN_EXE_opsi-backup"))
        .args(["--log-file", "/dev/null", "snapshots", "--json"])
        .env("OPSI_BACKUP_ROOT", root)
        .env_remove("OPSI_BACKUP_REPOSITORY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn cron_line_and_systemd_service_run_the_nightly_backup() {
    let server = FakeServer::new(5, false);
    let repo = server.root().join("backups");
    // The sample settings, pointed at a test repository, with a short policy.
    let settings = contrib("opsi-backup.toml")
        .replace("/var/backups/opsi-backup", &repo.display().to_string())
        .replace("keep_daily = 7", "keep_last = 2");
    std::fs::write(server.p("/etc/opsi/opsi-backup.toml"), settings).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_opsi-backup"))
        .args(["--log-file", "/dev/null", "init"])
        .env("OPSI_BACKUP_ROOT", server.root())
        .env_remove("OPSI_BACKUP_REPOSITORY")
        .status()
        .unwrap();
    assert!(status.success());

    let cron = contrib("cron/opsi-backup");
    let line = cron
        .lines()
        .find(|l| l.contains("opsi-backup create"))
        .expect("a cron line");
    let command = line.split_once(" root ").expect("user field").1;
    let service = contrib("systemd/opsi-backup.service");
    let exec: Vec<&str> = service
        .lines()
        .filter_map(|l| l.strip_prefix("ExecStart="))
        .collect();
    assert_eq!(exec.len(), 2, "create, then forget --prune");

    for night in 0..4 {
        std::fs::write(
            server.p(&format!(
                "/var/lib/opsi/config/clients/night{night}.example.org.ini"
            )),
            "[info]\n",
        )
        .unwrap();
        if night % 2 == 0 {
            common::sh(command, server.root());
        } else {
            for e in &exec {
                common::sh(e, server.root());
            }
        }
    }
    // keep_last = 2 (plus weekly/monthly keeping the newest of this week and month).
    let n = snapshot_count(server.root());
    assert!((2..=3).contains(&n), "{n} snapshots kept");
}
