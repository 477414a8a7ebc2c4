//! Shared test helpers: a realistic fake opsi server generated in a temp dir, a tree
//! comparison, and the binary under test. Each integration test file includes what it uses.
#![allow(dead_code)]

pub(crate) mod fake_server;
pub(crate) mod tree;

use std::path::Path;
use std::process::Command;

/// The opsi-backup binary, with a stable host identity and no log file.
pub(crate) fn bin(root: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_opsi-backup"));
    c.env("OPSI_BACKUP_ROOT", root)
        .env("OPSI_BACKUP_HOSTNAME", "opsiserver")
        .env("OPSI_BACKUP_FQDN", "opsiserver.example.org")
        .env("OPSI_BACKUP_OPSI_VERSION", "4.3.0.28")
        .env_remove("OPSI_BACKUP_REPOSITORY")
        .arg("--log-file")
        .arg("/dev/null");
    c
}

/// Runs a command and returns (exit code, stdout, stderr).
pub(crate) fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().expect("run opsi-backup");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs and insists on success, showing the output otherwise.
pub(crate) fn ok(cmd: &mut Command) -> String {
    let (code, out, err) = run(cmd);
    assert_eq!(
        code, 0,
        "command failed: {cmd:?}\nstdout:\n{out}\nstderr:\n{err}"
    );
    out
}

/// The binary with a repository set through the environment, as a nightly cron job has it.
pub(crate) fn repo_bin(root: &Path, repo: &Path) -> Command {
    let mut c = bin(root);
    c.env("OPSI_BACKUP_REPOSITORY", repo);
    c
}

/// `snapshots --json`, parsed.
pub(crate) fn snapshots(root: &Path, repo: &Path) -> Vec<serde_json::Value> {
    let out = ok(repo_bin(root, repo).args(["snapshots", "--json"]));
    serde_json::from_str::<serde_json::Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Bytes of all files below `p`.
pub(crate) fn dir_size(p: &Path) -> u64 {
    walkdir::WalkDir::new(p)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Starts `cmd` (output discarded), sends it SIGKILL after `delay`; whether the kill is what
/// ended it, i.e. whether it landed mid-run (false: the command had finished by itself).
pub(crate) fn kill_after(mut cmd: Command, delay: std::time::Duration) -> bool {
    use std::os::unix::process::ExitStatusExt;
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let _ = child.kill();
    let status = child.wait().unwrap();
    status.signal() == Some(libc::SIGKILL)
}

/// A regular file member of `d`'s length, owned by root, with a fixed mtime.
pub(crate) fn file_member(path: &str, d: Vec<u8>) -> (opsi_backup::member::Member, Vec<u8>) {
    use opsi_backup::member::{Member, MemberKind, Mtime};
    let m = Member {
        path: path.into(),
        kind: MemberKind::File,
        mode: 0o600,
        uid: 0,
        gid: 0,
        uname: "root".into(),
        gname: "root".into(),
        mtime: Mtime {
            secs: 1_764_000_000,
            pax: None,
        },
        size: d.len() as u64,
        raw_header: None,
        stamp: None,
    };
    (m, d)
}
