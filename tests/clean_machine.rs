//! README's "The nightly route" on a clean machine: a fresh Debian of this machine's release
//! (debootstrap), the demo opsi server's files in place, systemd booted as its init (in a PID
//! and mount namespace of its own), then every step of the route run verbatim in it as root:
//! `apt install` of the package that contrib/deb/build.sh builds, the settings copied,
//! `init`, `systemctl enable --now` of the timer, two nights (`systemctl start
//! opsi-backup.service`, as README says to run a night now), the snapshots listed, a restore.
//!
//! Ignored in the normal suite: it needs root, debootstrap and unshare, reaches the Debian
//! mirror (`OPSI_BACKUP_DEBIAN_MIRROR`, default deb.debian.org) and builds the .deb (~10 min;
//! `OPSI_BACKUP_DEB=FILE` takes a built one). Run: `cargo test --test clean_machine -- --ignored`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::ok;

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The package: `OPSI_BACKUP_DEB`, or built into `out` as README's "Debian package" says.
fn package(out: &Path) -> PathBuf {
    if let Some(deb) = std::env::var_os("OPSI_BACKUP_DEB") {
        return PathBuf::from(deb);
    }
    ok(Command::new("sh")
        .arg(manifest_dir().join("contrib/deb/build.sh"))
        .arg("--output")
        .arg(out));
    fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("build.sh wrote a .deb")
}

/// This machine's Debian release (`VERSION_CODENAME`): the clean machine is of the same kind.
fn codename() -> String {
    let release = fs::read_to_string("/etc/os-release").unwrap();
    release
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .expect("VERSION_CODENAME in /etc/os-release")
        .trim_matches('"')
        .to_string()
}

/// A booted systemd in its own PID and mount namespaces, chrooted into `root`; killed (and
/// with it every process of the machine and every mount) when dropped.
struct Machine {
    unshare: Child,
    init: u32,
}

impl Machine {
    fn boot(root: &Path, console: &Path) -> Machine {
        let r = root.display();
        let script = format!(
            "mount --make-rprivate / && mount --rbind {r} {r} && mount --rbind /dev {r}/dev \
             && mount -t proc proc {r}/proc && mount -t sysfs sysfs {r}/sys \
             && mount -t tmpfs tmpfs {r}/run && exec chroot {r} /lib/systemd/systemd --system"
        );
        let unshare = Command::new("unshare")
            .args(["--pid", "--fork", "--mount", "--uts", "--ipc", "sh", "-c"])
            .arg(script)
            .stdin(Stdio::null())
            .stdout(fs::File::create(console).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // systemd is the child of the forked unshare: PID 1 in its namespace.
        let start = Instant::now();
        let init = loop {
            let children = format!("/proc/{}/task/{}/children", unshare.id(), unshare.id());
            let found = fs::read_to_string(children)
                .ok()
                .and_then(|c| c.split_whitespace().next().map(|p| p.parse().unwrap()));
            let comm = found.and_then(|p: u32| fs::read_to_string(format!("/proc/{p}/comm")).ok());
            if let (Some(pid), Some("systemd")) = (found, comm.as_deref().map(str::trim)) {
                break pid;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "systemd did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let machine = Machine { unshare, init };
        // Until systemd listens on its socket, systemctl cannot even ask: ask again.
        let state = loop {
            let state = machine.shell("systemctl is-system-running 2>&1 || true");
            let state = state.trim().to_string();
            if matches!(state.as_str(), "running" | "degraded") {
                break state;
            }
            assert!(
                start.elapsed() < Duration::from_secs(180),
                "systemd: {state}\n{}",
                machine.shell("systemctl --failed --no-pager 2>&1 || true")
            );
            std::thread::sleep(Duration::from_millis(500));
        };
        eprintln!("systemd is {state}");
        machine
    }

    /// Runs `line` with `sh -c` as root in /root of the machine, with a clean environment as
    /// an admin's login shell has it; returns stdout, panics with both outputs on failure.
    fn shell(&self, line: &str) -> String {
        self.answering(line, "")
    }

    /// `shell`, with `typed` on stdin: what the admin answers to a prompt.
    fn answering(&self, line: &str, typed: &str) -> String {
        let mut cmd = Command::new("nsenter");
        cmd.arg("-t")
            .arg(self.init.to_string())
            .args(["-m", "-p", "-u", "-i", "-r", "-w"])
            .args(["env", "-i", "HOME=/root", "LANG=C.UTF-8"])
            .arg("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .args(["sh", "-c"])
            .arg(format!("cd /root && {line}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        use std::io::Write;
        let _ = child.stdin.take().unwrap().write_all(typed.as_bytes());
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{line}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        // Killing PID 1 of a namespace kills all of it; its mounts go with its mount namespace.
        let _ = Command::new("kill")
            .args(["-9", &self.init.to_string()])
            .status();
        let _ = self.unshare.wait();
    }
}

/// Copies `rel` of the demo server into the same place under `root`.
fn demo(rel: &str, root: &Path) {
    let to = root.join(rel);
    fs::create_dir_all(to.parent().unwrap()).unwrap();
    ok(Command::new("cp")
        .arg("-a")
        .arg(manifest_dir().join("examples/demo-server").join(rel))
        .arg(&to));
}

#[test]
#[ignore = "boots a clean Debian under systemd (root, debootstrap, the mirror, a .deb build); run with --ignored"]
fn the_readme_route_runs_verbatim_on_a_clean_debian_under_systemd() {
    let scratch = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let deb = package(scratch.path());
    let root = scratch.path().join("root");
    let mirror = std::env::var("OPSI_BACKUP_DEBIAN_MIRROR")
        .unwrap_or_else(|_| "http://deb.debian.org/debian".into());
    ok(Command::new("debootstrap")
        .args([
            "--variant=minbase",
            "--include=systemd,systemd-sysv,dbus,cron,logrotate",
        ])
        .arg(codename())
        .arg(&root)
        .arg(mirror));
    // An opsi server's data: the demo server's configuration, file backend and dhcpd.conf.
    demo("etc/opsi", &root);
    demo("var/lib/opsi", &root);
    demo("etc/dhcp/dhcpd.conf", &root);
    // The package where the route's `apt install ./target/debian/...` finds it.
    let debs = root.join("root/target/debian");
    fs::create_dir_all(&debs).unwrap();
    fs::copy(&deb, debs.join(deb.file_name().unwrap())).unwrap();

    let machine = Machine::boot(&root, &scratch.path().join("console.log"));
    let client = |name: &str| format!("/var/lib/opsi/config/clients/{name}.example.org.ini");
    let mut done = Vec::new();
    for step in common::readme::commands("## The nightly route") {
        let words: Vec<&str> = step.split_whitespace().collect();
        // apt asks before it installs the package's dependencies (mariadb-client for the
        // dumps, on a machine without it): the admin answers yes.
        let typed = if words.first() == Some(&"apt") {
            "y\n"
        } else {
            ""
        };
        let out = machine.answering(&step, typed);
        match words.as_slice() {
            ["apt", "install", ..] => {
                let which = machine.shell("command -v opsi-backup");
                assert_eq!(which.trim(), "/usr/bin/opsi-backup");
                done.push("install");
            }
            ["cp", ..] => done.push("settings"),
            ["opsi-backup", "init"] => {
                let mode = machine.shell("stat -c %a /var/backups/opsi-backup");
                assert_eq!(mode.trim(), "700", "{out}");
                done.push("init");
            }
            ["systemctl", "enable", "--now", "opsi-backup.timer"] => {
                let state = machine.shell(
                    "systemctl is-enabled opsi-backup.timer; systemctl is-active opsi-backup.timer",
                );
                assert_eq!(
                    state.split_whitespace().collect::<Vec<_>>(),
                    ["enabled", "active"]
                );
                let timers =
                    machine.shell("systemctl list-timers --all --no-pager opsi-backup.timer");
                assert!(timers.contains("opsi-backup.service"), "{timers}");
                let calendar = machine.shell("systemctl show -P TimersCalendar opsi-backup.timer");
                assert!(calendar.contains("*-*-* 03:00:00"), "{calendar}");
                // Two nights, run as README says to run one now; a client checks in between.
                for night in 0..2 {
                    machine.shell(&format!(
                        "printf '[info]\\nnight = {night}\\n' > {}",
                        client(&format!("night{night}"))
                    ));
                    machine.shell("systemctl start opsi-backup.service");
                    let result = machine.shell("systemctl show -P Result opsi-backup.service");
                    assert_eq!(
                        result.trim(),
                        "success",
                        "{}",
                        machine.shell("journalctl -u opsi-backup --no-pager || true")
                    );
                }
                let journal = machine.shell("journalctl -u opsi-backup --no-pager");
                assert!(journal.contains("saved ("), "{journal}");
                done.push("timer");
            }
            ["opsi-backup", "snapshots"] => {
                // Both nights fell on one day: keep_daily keeps its newest only.
                assert_eq!(out.lines().last(), Some("1 snapshot"), "{out}");
                done.push("snapshots");
                // Damage for the restore that follows: a client lost, a stray one added.
                machine.shell(&format!(
                    "rm {} && echo '[info]' > {}",
                    client("night1"),
                    client("stray")
                ));
            }
            ["opsi-backup", "restore", "latest", ..] => {
                let back = machine.shell(&format!("cat {}", client("night1")));
                assert_eq!(back, "[info]\nnight = 1\n", "{out}");
                let stray =
                    machine.shell(&format!("test -e {} && echo left || true", client("stray")));
                assert_eq!(stray.trim(), "", "the file backend is the snapshot's again");
                done.push("restore");
            }
            _ => panic!("the test does not know the README's step `{step}`"),
        }
    }
    assert_eq!(
        done,
        [
            "install",
            "settings",
            "init",
            "timer",
            "snapshots",
            "restore"
        ]
    );
    // The log file holds each night's summary; logrotate accepts the package's rule for it.
    let log = machine.shell("cat /var/log/opsi/opsi-backup.log");
    assert!(log.contains("saved ("), "{log}");
    machine.shell("logrotate --debug /etc/logrotate.d/opsi-backup");
    // The cron file is installed but runs nothing until its job line is uncommented.
    let cron = machine.shell("grep -v '^#' /etc/cron.d/opsi-backup | grep opsi-backup || true");
    assert_eq!(cron.trim(), "", "the cron job is disabled");
}
