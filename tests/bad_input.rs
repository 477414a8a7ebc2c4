//! Bad input gets a clear error and loses nothing: damaged, truncated and foreign files,
//! archives with members that would escape their target, missing CONTROL members, wrong
//! options, and destinations that cannot be written.

mod common;

use std::path::Path;
use std::process::Command;

use common::fake_server::FakeServer;
use common::{bin, ok, run};

fn make_archive(server: &FakeServer, dir: &Path, compression: &str) -> std::path::PathBuf {
    let a = dir.join(format!("b.{compression}"));
    ok(bin(server.root())
        .args(["create", "-c", compression])
        .arg(&a));
    a
}

fn python_archive(out: &Path, script: &str) {
    let st = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(out)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn bit_flip_is_named_and_nothing_is_restored() {
    let server = FakeServer::new(10, false);
    let dir = tempfile::tempdir().unwrap();
    let a = make_archive(&server, dir.path(), "none");
    let mut bytes = std::fs::read(&a).unwrap();
    let at = bytes
        .windows(12)
        .position(|w| w == b"[DEVICE_0]\nv")
        .unwrap();
    bytes[at + 3] ^= 0x01;
    std::fs::write(&a, bytes).unwrap();

    let (code, out, err) = run(bin(server.root()).arg("verify").arg(&a));
    assert_eq!((code, out.trim()), (1, "Verification failed"));
    assert!(
        err.contains("CONTENT/BACKENDS/FILE/file/audit/client") && err.contains(".hw is corrupt"),
        "{err}"
    );
    assert_eq!(
        err.lines().count(),
        1,
        "exactly the damaged member is named: {err}"
    );

    let (code, _, err) = run(bin(server.root()).arg("list").arg(&a));
    assert_eq!(code, 1, "{err}");

    let before = common::tree::read(server.root());
    let (code, _, err) = run(bin(server.root())
        .args(["restore", "--configuration", "--force"])
        .arg(&a));
    assert_eq!(code, 1);
    assert!(err.contains("corrupt"), "{err}");
    assert_eq!(
        before,
        common::tree::read(server.root()),
        "restore touched the system"
    );
}

#[test]
fn truncated_archives_are_clear_errors() {
    let server = FakeServer::new(50, false);
    let dir = tempfile::tempdir().unwrap();
    for c in ["none", "bz2", "gz"] {
        let a = make_archive(&server, dir.path(), c);
        let len = std::fs::metadata(&a).unwrap().len();
        // A plain tar cut inside its final zero padding is still whole; compressed streams
        // lose their end-of-stream marker there.
        let near_end = if c == "none" { len * 2 / 3 } else { len - 700 };
        for keep in [len / 3, near_end] {
            let cut = dir.path().join(format!("cut-{c}-{keep}"));
            std::fs::write(&cut, &std::fs::read(&a).unwrap()[..keep as usize]).unwrap();
            let (code, out, err) = run(bin(server.root()).arg("verify").arg(&cut));
            assert_eq!(code, 1, "{c} cut at {keep}: {out}{err}");
            assert!(
                err.starts_with("ERROR:") && !err.contains("panicked"),
                "{err}"
            );
        }
    }
}

#[test]
fn garbage_and_empty_files_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.tar.bz2");
    std::fs::write(&junk, vec![0x42u8; 10_000]).unwrap();
    let (code, _, err) = run(bin(dir.path()).arg("verify").arg(&junk));
    assert_eq!(code, 1);
    assert!(
        err.contains("not a tar archive") || err.contains("damaged"),
        "{err}"
    );
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let (code, _, err) = run(bin(dir.path()).arg("list").arg(&empty));
    assert_eq!(code, 1);
    assert!(err.contains("empty"), "{err}");
    let (code, _, err) = run(bin(dir.path())
        .arg("verify")
        .arg(dir.path().join("missing.tar")));
    assert_eq!(code, 1);
    assert!(err.contains("cannot open archive"), "{err}");
}

#[test]
fn missing_control_members_fail_verification() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("nocontrol.tar");
    python_archive(
        &a,
        "import tarfile,io,sys\nt=tarfile.open(sys.argv[1],'w')\ni=tarfile.TarInfo('CONTENT/CONF/x');i.size=1\nt.addfile(i,io.BytesIO(b'x'))\nt.close()",
    );
    let (code, _, err) = run(bin(dir.path()).arg("verify").arg(&a));
    assert_eq!(code, 1);
    assert!(err.contains("CONTROL/checksums is missing"), "{err}");
}

/// Each archive holds one hostile member next to valid CONTROL files; restore must refuse it,
/// name it, and leave the target untouched.
#[test]
fn members_escaping_their_target_are_refused() {
    let cases = [
        (
            "dotdot",
            "add_file('CONTENT/CONF/../../../etc/passwd', b'root::0:0')",
            "CONTENT/CONF/../../../etc/passwd",
        ),
        (
            "absolute_link",
            "add_link('CONTENT/CONF/evil', '/etc/shadow')",
            "CONTENT/CONF/evil",
        ),
        (
            "escaping_link",
            "add_link('CONTENT/CONF/up', '../../..')",
            "CONTENT/CONF/up",
        ),
        (
            "through_link",
            "add_link('CONTENT/CONF/ssl2', 'ssl')\nadd_file('CONTENT/CONF/ssl2/x', b'x')",
            "CONTENT/CONF/ssl2/x",
        ),
    ];
    for (name, body, offender) in cases {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join(format!("{name}.tar"));
        let script = format!(
            r#"import tarfile,io,sys,hashlib
t=tarfile.open(sys.argv[1],'w',format=tarfile.PAX_FORMAT)
sums=[]
def add_file(p,data):
    i=tarfile.TarInfo(p);i.size=len(data);t.addfile(i,io.BytesIO(data));sums.append(hashlib.sha1(data).hexdigest()+' '+p+'\n')
def add_link(p,target):
    i=tarfile.TarInfo(p);i.type=tarfile.SYMTYPE;i.linkname=target;t.addfile(i)
d=tarfile.TarInfo('CONTENT/CONF');d.type=tarfile.DIRTYPE;t.addfile(d)
d=tarfile.TarInfo('CONTENT/CONF/ssl');d.type=tarfile.DIRTYPE;t.addfile(d)
add_file('CONTENT/CONF/backends/file.conf', b"module='File'\n")
{body}
def ctl(p,s):
    i=tarfile.TarInfo(p);i.size=len(s);t.addfile(i,io.BytesIO(s))
ctl('CONTROL/checksums',''.join(sums).encode())
ctl('CONTROL/sysinfo',b'hostname: opsiserver\n')
t.close()"#
        );
        python_archive(&a, &script);
        let target = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(target.path().join("etc/opsi")).unwrap();
        std::fs::write(target.path().join("etc/opsi/keep"), "old").unwrap();
        let (code, _, err) = run(bin(target.path())
            .args(["restore", "--configuration", "--force"])
            .arg(&a));
        assert_eq!(code, 1, "{name}: {err}");
        assert!(
            err.contains(offender),
            "{name}: error does not name {offender}: {err}"
        );
        assert_eq!(
            std::fs::read_to_string(target.path().join("etc/opsi/keep")).unwrap(),
            "old",
            "{name}"
        );
        let stray: Vec<_> = std::fs::read_dir(target.path().join("etc"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(stray.len(), 1, "{name}: staging left behind: {stray:?}");
        assert!(!target.path().join("etc/passwd").exists());
    }
}

#[test]
fn unknown_backend_is_refused() {
    let server = FakeServer::new(2, false);
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(bin(server.root())
        .args(["create", "--backends", "ldap"])
        .arg(dir.path().join("x.tar.bz2")));
    assert_eq!(code, 1);
    assert!(err.contains("'ldap' is not a valid backend"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    let (code, _, _) = run(bin(server.root()).args(["create", "-c", "xz"]));
    assert_eq!(code, 2, "wrong usage exits 2");
}

#[test]
fn unwritable_destination_leaves_nothing() {
    let server = FakeServer::new(2, false);
    // Root ignores permission bits; /proc refuses new files to everyone.
    let dest = if nix::unistd::geteuid().is_root() {
        std::path::PathBuf::from("/proc/self/opsi-backup-test.tar.bz2")
    } else {
        let d = tempfile::tempdir().unwrap().keep();
        std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();
        d.join("x.tar.bz2")
    };
    let (code, _, err) = run(bin(server.root()).arg("create").arg(&dest));
    assert_eq!(code, 1);
    assert!(err.contains("cannot create the archive in"), "{err}");
}

#[test]
fn missing_destination_directory_is_refused_before_the_backup() {
    let server = FakeServer::new(2, false);
    let dir = tempfile::tempdir().unwrap();
    let dest = format!("{}/", dir.path().join("nightly").display());
    let (code, _, err) = run(bin(server.root()).arg("create").arg(&dest));
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        format!("ERROR: {dest} is not an existing directory")
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // An I/O error names its cause once.
    let (_, _, err) = run(bin(server.root())
        .arg("create")
        .arg(dir.path().join("no/such/dir/x.tar")));
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}

#[test]
fn existing_destination_survives_a_failed_create() {
    let server = FakeServer::new(2, false);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("nightly.tar.bz2");
    std::fs::write(&dest, "previous archive").unwrap();
    // A backend configuration that cannot be used makes create fail after it started.
    std::fs::write(
        server.p("/etc/opsi/backends/file.conf"),
        "module = 'File'\nconfig = {'baseDir': 42}\n",
    )
    .unwrap();
    let (code, _, err) = run(bin(server.root())
        .args(["create", "--backends", "file"])
        .arg(&dest));
    assert_eq!(code, 1, "{err}");
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "previous archive");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary file left"
    );
}

/// Rewrites archive `src` into `dst` with an extra PAX record `key=value` on its first CONTENT
/// file whose name fits a ustar header; the ustar fields keep their true values, so only the
/// record is wrong. Returns that member's name.
fn with_pax_record(src: &Path, dst: &Path, key: &str, value: &str) -> String {
    let script = r#"
import tarfile, sys
src, dst, key, val = sys.argv[1:5]
i = tarfile.open(src)
o = open(dst, 'wb')
done = None
for m in i.getmembers():
    data = i.extractfile(m).read() if m.isfile() else b''
    hdr = None
    if done is None and m.isfile() and m.name.startswith('CONTENT/') and len(m.name) < 100:
        recs = dict(m.pax_headers)
        recs[key] = val
        hdr = tarfile.TarInfo._create_pax_generic_header(recs, tarfile.XHDTYPE, 'utf-8')
        hdr += m.tobuf(tarfile.USTAR_FORMAT)
        done = m.name
    o.write(hdr if hdr is not None else m.tobuf(tarfile.PAX_FORMAT))
    o.write(data + b'\0' * ((512 - len(data) % 512) % 512))
o.write(b'\0' * 1024)
o.close()
print(done)
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args([src, dst])
        .args([key, value])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let name = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_ne!(name, "None");
    name
}

/// A numeric PAX record that is not a number in range is damage naming the member (as GNU
/// tar says "Malformed extended header"), not a record silently ignored.
#[test]
fn malformed_pax_numbers_are_damage() {
    let server = FakeServer::new(5, false);
    let dir = tempfile::tempdir().unwrap();
    let a = make_archive(&server, dir.path(), "none");
    // The rewrite itself keeps the archive valid: a well-formed record verifies.
    let good = dir.path().join("good.tar");
    with_pax_record(&a, &good, "uid", "0");
    let (code, out, err) = run(bin(server.root()).arg("verify").arg(&good));
    assert_eq!((code, out.trim()), (0, "Verified"), "{err}");
    let cases = [
        ("size", "-1"),
        ("size", "12abc"),
        ("size", "1e30"),
        ("size", "99999999999999999999999"),
        ("size", ""),
        ("uid", "x1"),
        ("gid", "-5"),
        ("mtime", "12abc"),
        ("mtime", ""),
        ("mtime", "99999999999999999999999"),
    ];
    for (n, (key, value)) in cases.into_iter().enumerate() {
        let bad = dir.path().join(format!("bad-{n}.tar"));
        let member = with_pax_record(&a, &bad, key, value);
        let (code, out, err) = run(bin(server.root()).arg("verify").arg(&bad));
        assert_eq!(code, 1, "{key}={value:?}: {out}{err}");
        assert!(
            err.contains(&member) && err.contains(&format!("PAX record {key}=")),
            "{key}={value:?}: {err}"
        );
    }
}

/// Unmounts on drop, also when the test fails.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A full disk is said as such, naming the file that could not be written, and leaves nothing.
#[test]
fn full_disk_names_the_file_and_says_the_disk_is_full() {
    let server = FakeServer::new(200, false);
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mnt)
        .output();
    if !mounted.as_ref().is_ok_and(|o| o.status.success()) {
        // Only root may mount: as root (CI) a failed mount fails the test; otherwise the run
        // says loudly what it did not test.
        assert!(
            !nix::unistd::geteuid().is_root(),
            "cannot mount a small tmpfs as root: {mounted:?}"
        );
        eprintln!("***** SKIPPED (not tested): full disk needs root to mount a tmpfs");
        return;
    }
    let _guard = Mounted(mnt.clone());
    let dest = mnt.join("b.tar");
    let (code, _, err) = run(bin(server.root()).args(["create", "-c", "none"]).arg(&dest));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("the disk is full") && err.contains(&*dest.to_string_lossy()),
        "{err}"
    );
    assert!(!err.contains("reading CONTENT"), "{err}");
    assert_eq!(std::fs::read_dir(&mnt).unwrap().count(), 0, "nothing left");
}
