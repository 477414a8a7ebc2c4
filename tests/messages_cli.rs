//! What the command line says, driven through the binary: errors that name their cause and
//! the next step, `-q` for cron, errors and summaries in the log file, the help's layout, and
//! the small wordings (plurals, a first snapshot, a misleading archive name, a broken toml).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::fake_server::FakeServer;
use common::{bin, logged_bin, ok, run};

/// Runs a command that must fail with exit 1 and returns its stderr.
fn fails(cmd: &mut Command) -> String {
    fails_with(1, cmd)
}

/// Runs a command that must fail with exit `expected` and returns its stderr.
fn fails_with(expected: i32, cmd: &mut Command) -> String {
    let (code, out, err) = run(cmd);
    assert_eq!(code, expected, "{cmd:?}\nstdout:\n{out}\nstderr:\n{err}");
    err
}

/// The exit code of a repository command that finds no repository (README, "Exit codes").
const NO_REPOSITORY: i32 = 10;

#[test]
fn a_repository_path_that_is_a_file_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("afile");
    std::fs::write(&file, "x").unwrap();
    let err = fails_with(
        NO_REPOSITORY,
        bin(dir.path()).arg("-r").arg(&file).arg("snapshots"),
    );
    assert!(
        err.contains("is a file, not a directory") && err.contains("--repository DIR"),
        "{err}"
    );
    assert!(!err.contains("does not exist"), "{err}");
}

#[test]
fn a_missing_repository_says_to_run_init() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = fails_with(
        NO_REPOSITORY,
        common::repo_bin(dir.path(), &missing).arg("snapshots"),
    );
    let want = format!("run `opsi-backup init --repository {}`", missing.display());
    assert!(
        err.contains("does not exist") && err.contains(&want),
        "{err}"
    );
}

#[test]
fn a_directory_without_config_json_says_how_to_find_or_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let err = fails_with(
        NO_REPOSITORY,
        common::repo_bin(dir.path(), dir.path()).arg("snapshots"),
    );
    assert!(
        err.contains("is not an opsi-backup repository (it has no config.json)")
            && err.contains("opsi-backup init --repository DIR"),
        "{err}"
    );
}

/// Run as nobody: root reads every repository, so the test needs another user.
fn as_nobody(cmd: &Command) -> Option<Command> {
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let mut c = Command::new(setpriv);
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    Some(c)
}

#[test]
fn an_unreadable_repository_says_permission_denied() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let repo = dir.path().join("repo");
    ok(common::repo_bin(dir.path(), &repo).arg("init"));
    let Some(mut cmd) = as_nobody(common::repo_bin(dir.path(), &repo).arg("snapshots")) else {
        eprintln!("skipped: needs root and setpriv to run as another user");
        return;
    };
    // The directory is 0700: nobody cannot even look for config.json.
    let err = fails(&mut cmd);
    assert!(
        err.contains("permission denied") && err.contains("as root or as the repository's owner"),
        "{err}"
    );
    assert!(!err.contains("no config.json"), "{err}");
    // A readable directory with an unreadable config.json says the same.
    std::fs::set_permissions(&repo, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = as_nobody(common::repo_bin(dir.path(), &repo).arg("snapshots")).unwrap();
    let err = fails(&mut cmd);
    assert!(
        err.contains("permission denied on config.json") && !err.contains("os error"),
        "{err}"
    );
}

#[test]
fn init_on_a_file_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("afile");
    std::fs::write(&file, "x").unwrap();
    for target in [file.clone(), file.join("sub")] {
        let err = fails(common::repo_bin(dir.path(), &target).arg("init"));
        assert!(
            err.contains(&format!("{} is a file", file.display())) || err.contains("it is a file"),
            "{err}"
        );
        assert!(
            err.contains("new or empty directory") && !err.contains("os error"),
            "{err}"
        );
    }
}

#[test]
fn a_snapshot_without_a_repository_asks_for_the_repository() {
    let dir = tempfile::tempdir().unwrap();
    for cmd in ["list", "verify", "restore"] {
        let err = fails(
            bin(dir.path())
                .current_dir(dir.path())
                .args([cmd, "latest"]),
        );
        assert!(
            err.contains("no repository is given") && err.contains("--repository DIR"),
            "{cmd}: {err}"
        );
        assert!(!err.contains("cannot open archive"), "{cmd}: {err}");
    }
    // A missing archive by any other name is still the original's error.
    let err = fails(bin(dir.path()).args(["verify", "missing.tar"]));
    assert!(err.contains("cannot open archive"), "{err}");
}

#[test]
fn quiet_runs_print_nothing_and_the_log_keeps_summaries_and_errors() {
    let server = FakeServer::new(3, false);
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let log = work.path().join("opsi-backup.log");
    let quiet = |args: &[&str]| {
        let (code, out, err) = run(logged_bin(server.root(), &log)
            .env("OPSI_BACKUP_REPOSITORY", &repo)
            .arg("-q")
            .args(args));
        assert_eq!(code, 0, "{args:?}: {err}");
        assert_eq!(out, "", "{args:?} printed on stdout with -q");
    };
    quiet(&["init"]);
    quiet(&["create"]);
    quiet(&["create"]);
    quiet(&["verify"]);
    quiet(&["snapshots"]);
    quiet(&["forget", "--keep-last", "1", "--prune"]);
    let archive = work.path().join("a.tar");
    quiet(&["export", "latest", "-c", "none", archive.to_str().unwrap()]);
    let (code, out, _) = run(logged_bin(server.root(), &log)
        .arg("-q")
        .arg("verify")
        .arg(&archive));
    assert_eq!((code, out.as_str()), (0, ""));
    // --json is asked for: it is printed even with -q.
    let out = ok(logged_bin(server.root(), &log)
        .env("OPSI_BACKUP_REPOSITORY", &repo)
        .args(["-q", "snapshots", "--json"]));
    assert!(out.trim_start().starts_with('['), "{out}");

    // Two failing runs: their errors are in the log.
    let missing = work.path().join("missing");
    fails(
        logged_bin(server.root(), &log)
            .arg("-q")
            .arg("--repository")
            .arg(&missing)
            .arg("create"),
    );
    let damaged = work.path().join("damaged.tar");
    let mut bytes = std::fs::read(&archive).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0xff;
    std::fs::write(&damaged, bytes).unwrap();
    fails(
        logged_bin(server.root(), &log)
            .args(["-q", "verify"])
            .arg(&damaged),
    );

    let text = std::fs::read_to_string(&log).unwrap();
    for want in [
        "created repository at",
        "saved (",
        "Verified",
        "1 snapshot removed",
        "freed:",
        "a.tar",
        "ERROR: no repository at",
        "does not exist",
        "ERROR: ",
        "Verification failed",
    ] {
        assert!(text.contains(want), "the log lacks {want:?}:\n{text}");
    }
}

#[test]
fn help_puts_global_options_apart_and_hides_env_values() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(bin(dir.path())
        .env("OPSI_BACKUP_REPOSITORY", "/srv/r")
        .args(["list", "--help"]));
    let (own, global) = out.split_once("Global options:").expect(&out);
    assert!(
        own.contains("--long") && !own.contains("--repository"),
        "{out}"
    );
    assert!(
        global.contains("-r, --repository <DIR>")
            && global.contains("-q, --quiet")
            && global.contains("[env: OPSI_BACKUP_REPOSITORY]")
            && global.contains("opsi-backup.toml")
            && !global.contains("/srv/r"),
        "{out}"
    );
}

#[test]
fn list_long_lists_an_archives_members_and_a_snapshots() {
    let server = FakeServer::new(3, false);
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("a.tar");
    ok(bin(server.root())
        .args(["create", "-c", "none"])
        .arg(&archive));
    let short = ok(bin(server.root()).arg("list").arg(&archive));
    assert_eq!(short.lines().count(), 1, "{short}");
    let long = ok(bin(server.root()).args(["list", "--long"]).arg(&archive));
    assert!(long.lines().count() > 10, "{long}");
    assert!(
        long.lines()
            .any(|l| l.starts_with('-') && l.ends_with("CONTROL/checksums")),
        "{long}"
    );
    let repo = work.path().join("repo");
    ok(common::repo_bin(server.root(), &repo).arg("init"));
    ok(common::repo_bin(server.root(), &repo).arg("create"));
    let snap = ok(common::repo_bin(server.root(), &repo).args(["list", "--long", "latest"]));
    assert_eq!(
        snap.lines().count(),
        long.lines().count(),
        "{snap}\n---\n{long}"
    );
}

#[test]
fn plurals_and_a_first_snapshot_read_well() {
    let server = FakeServer::new(3, false);
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    ok(common::repo_bin(server.root(), &repo).arg("init"));
    let first = ok(common::repo_bin(server.root(), &repo).arg("create"));
    assert!(
        first.contains("saved (") && !first.contains("unchanged"),
        "{first}"
    );
    let out = ok(common::repo_bin(server.root(), &repo).arg("snapshots"));
    assert!(out.trim_end().ends_with("\n1 snapshot"), "{out}");
    let second = ok(common::repo_bin(server.root(), &repo).arg("create"));
    assert!(
        second.contains("unchanged files not read again"),
        "{second}"
    );
    let out = ok(common::repo_bin(server.root(), &repo).args(["forget", "--keep-last", "1"]));
    assert!(out.contains("1 snapshot removed"), "{out}");
}

#[test]
fn an_archive_name_promising_another_compression_is_warned_about_and_kept() {
    let server = FakeServer::new(3, false);
    let work = tempfile::tempdir().unwrap();
    let gz = work.path().join("x.tar.gz");
    let (code, _, err) = run(bin(server.root()).args(["create", "-c", "bz2"]).arg(&gz));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("x.tar.gz: the name says gzip, but the archive is written with bzip2"),
        "{err}"
    );
    assert!(gz.is_file());
    assert_eq!(&std::fs::read(&gz).unwrap()[..3], b"BZh");
    let (code, _, err) = run(bin(server.root()).args(["create", "-c", "gz"]).arg(&gz));
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("the name says"), "{err}");
}

#[test]
fn a_broken_settings_file_does_not_stop_reading_an_archive() {
    let server = FakeServer::new(3, false);
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("a.tar");
    ok(bin(server.root())
        .args(["create", "-c", "none"])
        .arg(&archive));
    let toml = server.p("/etc/opsi/opsi-backup.toml");
    std::fs::write(&toml, "repository = \"/var/backups/opsi\n").unwrap();
    let (code, out, err) = run(bin(server.root()).arg("list").arg(&archive));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("contains:"), "{out}");
    assert!(
        err.contains("opsi-backup.toml") && err.contains("ignored, as list does not need it"),
        "{err}"
    );
    ok(bin(server.root()).arg("verify").arg(&archive));
    // A nightly create must not silently write an archive instead of a snapshot.
    let err = fails(bin(server.root()).current_dir(work.path()).arg("create"));
    assert!(
        err.starts_with("ERROR: ") && err.contains("fix /etc/opsi/opsi-backup.toml"),
        "{err}"
    );
}

#[test]
fn a_restore_refused_without_a_terminal_has_one_prefix() {
    let server = FakeServer::new(3, false);
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("a.tar");
    ok(bin(server.root())
        .args(["create", "-c", "none"])
        .arg(&archive));
    let target = tempfile::tempdir().unwrap();
    let err = fails(
        bin(target.path())
            .env("OPSI_BACKUP_HOSTNAME", "another")
            .env("OPSI_BACKUP_FQDN", "another.example.org")
            .args(["restore", "--configuration"])
            .arg(&archive),
    );
    assert!(
        err.contains("ERROR: Your system config is different") && !err.contains("ERROR: WARNING"),
        "{err}"
    );
}
