//! Shared test helpers: a realistic fake opsi server generated in a temp dir, a tree
//! comparison, and the binary under test. Each integration test file includes what it uses.
#![allow(dead_code)]

pub(crate) mod fake_server;
pub(crate) mod readme;
pub(crate) mod tree;

use std::path::Path;
use std::process::Command;

/// The opsi-backup binary, with a stable host identity and no log file.
pub(crate) fn bin(root: &Path) -> Command {
    logged_bin(root, Path::new("/dev/null"))
}

/// `bin` with the log going to `log`.
pub(crate) fn logged_bin(root: &Path, log: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_opsi-backup"));
    c.env("OPSI_BACKUP_ROOT", root)
        .env("OPSI_BACKUP_HOSTNAME", "opsiserver")
        .env("OPSI_BACKUP_FQDN", "opsiserver.example.org")
        .env("OPSI_BACKUP_OPSI_VERSION", "4.3.0.28")
        .env_remove("OPSI_BACKUP_REPOSITORY")
        .arg("--log-file")
        .arg(log);
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
        xattrs: Vec::new(),
    };
    (m, d)
}

/// Holds the repository lock exclusively with flock(1) until the returned child's stdin closes.
pub(crate) fn hold_lock(repo: &Path) -> std::process::Child {
    let child = std::process::Command::new("flock")
        .arg("-x")
        .arg(repo.join("lock"))
        .arg("cat")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // flock(1) has taken the lock once `cat` runs; wait until a try fails.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::process::Command::new("flock")
        .args(["-n", "-s"])
        .arg(repo.join("lock"))
        .arg("true")
        .status()
        .unwrap()
        .success()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "flock(1) did not take the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child
}

/// The repository's pack files, sorted.
pub(crate) fn pack_files(repo: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<std::path::PathBuf> = walkdir::WalkDir::new(repo.join("packs"))
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    v.sort();
    v
}

/// The repository's largest pack: the one holding the first snapshot's content chunks, where
/// a test damages a byte.
pub(crate) fn largest_pack(repo: &Path) -> std::path::PathBuf {
    pack_files(repo)
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .expect("the repository has a pack")
}

/// Runs a shell command line as cron, systemd or root's shell would, with our binary on PATH
/// in place of /usr/bin/opsi-backup; returns its stdout.
pub(crate) fn sh(line: &str, root: &Path) -> String {
    let bin_dir = std::path::PathBuf::from(env!("CARGO_BIN_EXE_opsi-backup"))
        .parent()
        .unwrap()
        .to_path_buf();
    let line = line.replace("/usr/bin/opsi-backup", "opsi-backup");
    let out = Command::new("sh")
        .arg("-c")
        .arg(&line)
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
        .env("OPSI_BACKUP_ROOT", root)
        .env("OPSI_BACKUP_HOSTNAME", "opsiserver")
        .env("OPSI_BACKUP_FQDN", "opsiserver.example.org")
        .env("OPSI_BACKUP_OPSI_VERSION", "4.3.0.28")
        .env_remove("OPSI_BACKUP_REPOSITORY")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{line}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `snapshots --json` of a prepared command (an encrypted repository's, with its password).
pub(crate) fn snapshots_with(cmd: &mut Command) -> Vec<serde_json::Value> {
    let out = ok(cmd.args(["snapshots", "--json"]));
    serde_json::from_str::<serde_json::Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}
