//! Restore never writes outside its targets: targets taken from an archive's backend
//! configuration are confined to the root, symlinks are checked against the finished tree,
//! a failure half-way puts back what was already swapped in, and what a killed run left behind
//! is cleaned up by the next run.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::fake_server::FakeServer;
use common::{bin, ok, run};
use opsi_backup::leftovers;

/// An archive of the whole fake server (configuration, file backend, dhcpd).
fn archive_of(server: &FakeServer, dir: &Path) -> PathBuf {
    let a = dir.join("full.tar");
    ok(bin(server.root()).args(["create", "-c", "none"]).arg(&a));
    a
}

/// A copy of `src` whose member `member` holds `text`, with CONTROL/checksums updated: an
/// archive that verifies, as one made on a hostile server would.
fn with_member(src: &Path, member: &str, text: &str) -> PathBuf {
    let dst = src.with_file_name(format!("edited-{}.tar", member.replace('/', "_")));
    let script = r#"import tarfile,io,sys,hashlib
src,dst,name,text=sys.argv[1],sys.argv[2],sys.argv[3],sys.argv[4].encode()
ti=tarfile.open(src)
to=tarfile.open(dst,'w',format=tarfile.PAX_FORMAT)
sums=None
for m in ti.getmembers():
    data=ti.extractfile(m).read() if m.isfile() else None
    if m.name==name:
        data=text;m.size=len(data)
    if m.name=='CONTROL/checksums':
        lines=[l for l in data.decode().splitlines() if not l.endswith(' '+name)]
        lines.append(hashlib.sha1(text).hexdigest()+' '+name)
        data=('\n'.join(lines)+'\n').encode();m.size=len(data)
    to.addfile(m,io.BytesIO(data) if data is not None else None)
to.close()"#;
    let st = Command::new("python3")
        .args(["-c", script])
        .arg(src)
        .arg(&dst)
        .args([member, text])
        .status()
        .unwrap();
    assert!(st.success());
    dst
}

fn file_conf(base_dir: &str, host_key_file: &str) -> String {
    format!("module = 'File'\nconfig = {{\"baseDir\": u\"{base_dir}\", \"hostKeyFile\": u\"{host_key_file}\"}}\n")
}

/// Hostile `baseDir`/`hostKeyFile`/`dhcpdConfigFile` values in the archive's configuration are
/// refused before anything is touched, naming the setting and the member.
#[test]
fn targets_from_the_archive_must_stay_inside_the_root() {
    let server = FakeServer::new(3, false);
    let dir = tempfile::tempdir().unwrap();
    let a = archive_of(&server, dir.path());
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir(outside.path().join("outside_dir")).unwrap();
    std::fs::write(outside.path().join("outside_dir/precious"), "keep me").unwrap();
    std::fs::write(outside.path().join("outside_file"), "keep me too").unwrap();
    let climb = format!("/../../../../../../..{}", outside.path().display());
    // A symlinked directory of the live system leading out of the root.
    std::os::unix::fs::symlink(outside.path(), server.p("/var/lib/elsewhere")).unwrap();
    let file_member = "CONTENT/CONF/backends/file.conf";
    let cases = [
        (
            file_member,
            file_conf(&format!("{climb}/outside_dir"), "/etc/opsi/pckeys"),
            "`baseDir`",
        ),
        (
            file_member,
            file_conf("/var/lib/opsi/config", &format!("{climb}/outside_file")),
            "`hostKeyFile`",
        ),
        (
            file_member,
            file_conf("/etc", "/etc/opsi/pckeys"),
            "`baseDir`",
        ),
        (file_member, file_conf("/", "/etc/opsi/pckeys"), "`baseDir`"),
        (
            file_member,
            file_conf("/var/lib/", "/etc/opsi/pckeys"),
            "`baseDir`",
        ),
        (
            file_member,
            file_conf("/etc/opsi/data", "/etc/opsi/pckeys"),
            "`baseDir`",
        ),
        (
            file_member,
            file_conf("/var/lib/elsewhere/outside_dir", "/etc/opsi/pckeys"),
            "`baseDir`",
        ),
        (
            "CONTENT/CONF/backends/dhcpd.conf",
            format!(
                "module = 'DHCPD'\nconfig = {{\"dhcpdConfigFile\": u\"{climb}/outside_file\"}}\n"
            ),
            "`dhcpdConfigFile`",
        ),
    ];
    for (member, conf, setting) in cases {
        let evil = with_member(&a, member, &conf);
        let before = common::tree::read(server.root());
        let outside_before = common::tree::read(outside.path());
        let (code, _, err) = run(bin(server.root())
            .args(["restore", "--configuration", "--force"])
            .arg(&evil));
        assert_eq!(code, 1, "{conf}: {err}");
        assert!(
            err.contains(setting) && err.contains(&format!("{}:{member}", evil.display())),
            "{conf}: the error names neither the setting nor the member: {err}"
        );
        assert_eq!(
            before,
            common::tree::read(server.root()),
            "{conf}: the server was touched"
        );
        assert_eq!(
            outside_before,
            common::tree::read(outside.path()),
            "{conf}: outside the root was touched"
        );
    }
}

/// The usual case keeps working: pckeys is a single file inside the /etc/opsi target.
#[test]
fn a_full_restore_leaves_nothing_beside_its_targets() {
    let server = FakeServer::new(3, false);
    let dir = tempfile::tempdir().unwrap();
    let a = archive_of(&server, dir.path());
    // The tree as backed up, kept aside with its times (cp -a).
    let backed_up = tempfile::tempdir().unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(server.p("/etc/opsi"))
        .arg(backed_up.path())
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(server.p("/etc/opsi/pckeys"), "changed").unwrap();
    ok(bin(server.root())
        .args(["restore", "--configuration", "--force"])
        .arg(&a));
    common::tree::assert_same(&backed_up.path().join("opsi"), &server.p("/etc/opsi"));
    for d in ["/etc", "/var/lib/opsi", "/etc/dhcp"] {
        let stray: Vec<_> = std::fs::read_dir(server.p(d))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("opsi-backup"))
            .collect();
        assert!(stray.is_empty(), "{d}: {stray:?}");
    }
}

fn link_archive(out: &Path, links: &[(&str, &str)]) {
    let mut body = String::new();
    for (at, to) in links {
        body.push_str(&format!("add_link('CONTENT/CONF/{at}', '{to}')\n"));
    }
    let script = format!(
        r#"import tarfile,io,sys,hashlib
t=tarfile.open(sys.argv[1],'w',format=tarfile.PAX_FORMAT)
sums=[]
def add_file(p,data):
    i=tarfile.TarInfo(p);i.size=len(data);t.addfile(i,io.BytesIO(data));sums.append(hashlib.sha1(data).hexdigest()+' '+p+'\n')
def add_link(p,target):
    i=tarfile.TarInfo(p);i.type=tarfile.SYMTYPE;i.linkname=target;t.addfile(i)
for d in ['CONTENT/CONF','CONTENT/CONF/a']:
    i=tarfile.TarInfo(d);i.type=tarfile.DIRTYPE;i.mode=0o755;t.addfile(i)
add_file('CONTENT/CONF/backends/file.conf', b"module='File'\n")
{body}
def ctl(p,s):
    i=tarfile.TarInfo(p);i.size=len(s);t.addfile(i,io.BytesIO(s))
ctl('CONTROL/checksums',''.join(sums).encode())
ctl('CONTROL/sysinfo',b'hostname: opsiserver\n')
t.close()"#
    );
    let st = Command::new("python3")
        .args(["-c", &script])
        .arg(out)
        .status()
        .unwrap();
    assert!(st.success());
}

/// `a/b -> ..` and `esc -> a/b/a/b/a/b/../../../outside_file` each pass a lexical check, but
/// together lead out of the tree, in either order.
#[test]
fn symlinks_leading_out_through_other_symlinks_are_refused() {
    let escape = "a/b/a/b/a/b/../../../outside_file";
    for links in [
        [("a/b", ".."), ("esc", escape)],
        [("esc", escape), ("a/b", "..")],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("links.tar");
        link_archive(&a, &links);
        let target = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(target.path().join("etc/opsi")).unwrap();
        std::fs::write(target.path().join("etc/opsi/keep"), "old").unwrap();
        let before = common::tree::read(target.path());
        let (code, _, err) = run(bin(target.path())
            .args(["restore", "--configuration", "--force"])
            .arg(&a));
        assert_eq!(code, 1, "{links:?}: {err}");
        assert!(
            err.contains("CONTENT/CONF/esc") && err.contains("outside the restored tree"),
            "{links:?}: {err}"
        );
        let after = common::tree::read(target.path());
        assert_eq!(before.get("etc/opsi/keep"), after.get("etc/opsi/keep"));
        assert_eq!(
            before.keys().collect::<Vec<_>>(),
            after.keys().collect::<Vec<_>>(),
            "{links:?}: something was left or created"
        );
    }
}

/// What a restore compares after a rollback: its targets as they were.
fn targets_state(server: &FakeServer) -> Vec<impl PartialEq + std::fmt::Debug> {
    vec![
        common::tree::read(&server.p("/etc/opsi")),
        common::tree::read(&server.p("/var/lib/opsi/config")),
        common::tree::read(&server.p("/etc/dhcp/dhcpd.conf")),
    ]
}

/// Changes every target of a restore so that a restore would be visible.
fn change_targets(server: &FakeServer) {
    std::fs::write(server.p("/etc/opsi/new-since-backup"), "x").unwrap();
    std::fs::write(server.p("/etc/opsi/pckeys"), "changed keys").unwrap();
    std::fs::write(server.p("/var/lib/opsi/config/new-since-backup"), "x").unwrap();
    std::fs::write(server.p("/etc/dhcp/dhcpd.conf"), "changed dhcpd").unwrap();
}

/// A failure at the second target (injected, test-only) puts /etc/opsi back as it was.
#[test]
#[cfg_attr(
    not(feature = "crash-points"),
    ignore = "needs --features crash-points"
)]
fn a_failure_at_the_second_target_puts_the_first_back() {
    let server = FakeServer::new(3, false);
    let dir = tempfile::tempdir().unwrap();
    let a = archive_of(&server, dir.path());
    change_targets(&server);
    let before = targets_state(&server);
    let (code, _, err) = run(bin(server.root())
        .env("OPSI_BACKUP_FAIL_AT", "restore-swap-2")
        .args(["restore", "--configuration", "--force"])
        .arg(&a));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("put back as it was"), "{err}");
    assert!(
        before == targets_state(&server),
        "a target was not put back"
    );
}

/// A real failure at the second target: its directory cannot be renamed (immutable). The
/// old code had replaced /etc/opsi already and left it so.
#[test]
fn an_immutable_second_target_puts_the_first_back() {
    let server = FakeServer::new(3, false);
    let dir = tempfile::tempdir().unwrap();
    let a = archive_of(&server, dir.path());
    change_targets(&server);
    let config = server.p("/var/lib/opsi/config");
    let chattr = |flag: &str| {
        Command::new("chattr")
            .arg(flag)
            .arg(&config)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !chattr("+i") {
        eprintln!("skipped: chattr +i is not available here");
        return;
    }
    let before = targets_state(&server);
    let (code, _, err) = run(bin(server.root())
        .args(["restore", "--configuration", "--force"])
        .arg(&a));
    let after = targets_state(&server);
    chattr("-i");
    assert_eq!(code, 1, "{err}");
    assert!(before == after, "a target was not put back: {err}");
    assert!(err.contains("put back as it was"), "{err}");
}

fn leftovers_in(dirs: &[PathBuf]) -> Vec<String> {
    let mut out = Vec::new();
    for d in dirs {
        for e in std::fs::read_dir(d).unwrap() {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            if n.contains(".opsi-backup-") {
                out.push(format!("{}/{n}", d.display()));
            }
        }
    }
    out
}

/// A restore killed after staging (abort, as kill -9) leaves staging trees and files; the next
/// restore removes them and says so.
#[test]
#[cfg_attr(
    not(feature = "crash-points"),
    ignore = "needs --features crash-points"
)]
fn the_next_restore_removes_what_a_killed_one_left() {
    let server = FakeServer::new(3, false);
    let dir = tempfile::tempdir().unwrap();
    let a = archive_of(&server, dir.path());
    change_targets(&server);
    let dirs = [
        server.p("/etc"),
        server.p("/var/lib/opsi"),
        server.p("/etc/dhcp"),
    ];
    let (code, _, _) = run(bin(server.root())
        .env("OPSI_BACKUP_CRASH_AT", "restore-staged")
        .args(["restore", "--configuration", "--force"])
        .arg(&a));
    assert_ne!(code, 0);
    let left = leftovers_in(&dirs);
    assert_eq!(
        left.len(),
        3,
        "staged /etc/opsi, config and dhcpd.conf: {left:?}"
    );
    let (code, _, err) = run(bin(server.root())
        .args(["restore", "--configuration", "--force"])
        .arg(&a));
    assert_eq!(code, 0, "{err}");
    for l in &left {
        assert!(err.contains(&format!("Removed {l}")), "{l}: {err}");
    }
    assert!(leftovers_in(&dirs).is_empty());
}

/// A tree moved aside by a run that died before the staged one was renamed in (the two-rename
/// swap where the file system cannot exchange) is put back, not deleted.
#[test]
fn a_tree_moved_aside_by_a_dead_run_is_put_back() {
    let server = FakeServer::new(3, false);
    let dir = tempfile::tempdir().unwrap();
    let a = archive_of(&server, dir.path());
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let aside = server.p(&format!(
        "/etc/.hosts.d.opsi-backup-old-{}Xq3",
        leftovers::tag_for(dead, 1)
    ));
    std::fs::create_dir(&aside).unwrap();
    std::fs::write(aside.join("entry"), "old data").unwrap();
    let (code, _, err) = run(bin(server.root())
        .args(["restore", "--configuration", "--force"])
        .arg(&a));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("Put back"), "{err}");
    assert_eq!(
        std::fs::read_to_string(server.p("/etc/hosts.d/entry")).unwrap(),
        "old data"
    );
    assert!(!aside.exists());
}

/// `create` killed (abort, as kill -9) after writing its partial file: the next create in the
/// directory removes it, a live run's partial file is kept.
#[test]
#[cfg_attr(
    not(feature = "crash-points"),
    ignore = "needs --features crash-points"
)]
fn the_next_create_removes_a_dead_runs_partial_archive() {
    let server = FakeServer::new(3, false);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("nightly.tar.gz");
    let (code, _, _) = run(bin(server.root())
        .env("OPSI_BACKUP_CRASH_AT", "archive-synced")
        .arg("create")
        .arg(&dest));
    assert_ne!(code, 0);
    let partial = leftovers_in(&[dir.path().to_path_buf()]);
    assert_eq!(partial.len(), 1, "{partial:?}");
    assert!(partial[0].ends_with(".partial"));
    // A partial file whose owner is this (live) test process is not touched.
    let live = dir.path().join(format!(
        ".opsi-backup-{}live.partial",
        leftovers::tag_for(std::process::id(), own_start_time())
    ));
    std::fs::write(&live, "in progress").unwrap();
    let (code, _, err) = run(bin(server.root()).arg("create").arg(&dest));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("Removed {}", partial[0])), "{err}");
    assert!(!Path::new(&partial[0]).exists());
    assert!(live.exists());
    assert!(dest.exists());
}

fn own_start_time() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}
