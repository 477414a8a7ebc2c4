//! Compatibility with the original's archive code, checked with independent readers and
//! writers: python3's tarfile writing archives in the original's style, python3's tarfile and
//! hashlib reading ours, and the genuine archives in tests/fixtures/golden.

mod common;

use std::path::Path;
use std::process::Command;

use common::fake_server::FakeServer;
use common::{bin, ok, run};

fn python(args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new("python3")
        .args(args)
        .output()
        .expect("python3 is installed");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Our uncompressed archive equals, member for member, what the original's code writes for
/// the same tree; only CONTROL/checksums differs where the original cuts it short.
#[test]
fn create_writes_the_same_tar_stream_as_the_original() {
    let server = FakeServer::new(40, false);
    let out = tempfile::tempdir().unwrap();
    let ours = out.path().join("ours.tar");
    ok(bin(server.root())
        .args([
            "create",
            "-c",
            "none",
            "--backends",
            "file",
            "--backends",
            "dhcp",
        ])
        .arg(&ours));

    // Feed the original-style writer the sysinfo we recorded, then compare streams.
    let sysinfo = out.path().join("sysinfo");
    let script = "import tarfile,sys\nt=tarfile.open(sys.argv[1])\nsys.stdout.write(t.extractfile('CONTROL/sysinfo').read().decode())";
    std::fs::write(
        &sysinfo,
        python(&["-c".as_ref(), script.as_ref(), ours.as_os_str()]),
    )
    .unwrap();
    let theirs = out.path().join("theirs.tar");
    python(&[
        fixture("original_style.py").as_os_str(),
        server.root().as_os_str(),
        theirs.as_os_str(),
        "none".as_ref(),
        sysinfo.as_os_str(),
    ]);

    let a = std::fs::read(&ours).unwrap();
    let b = std::fs::read(&theirs).unwrap();
    let control_at = find(&a, b"CONTROL/checksums").expect("our CONTROL member");
    assert_eq!(control_at % 512, 0);
    assert_eq!(
        &a[..control_at],
        &b[..control_at],
        "CONTENT members differ from the original's bytes"
    );
    assert_eq!(find(&b, b"CONTROL/checksums"), Some(control_at));

    // Both archives verify with our tool, including the original's cut CONTROL/checksums.
    for f in [&ours, &theirs] {
        assert_eq!(
            ok(bin(server.root()).arg("verify").arg(f)).trim(),
            "Verified",
            "{}",
            f.display()
        );
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// python3's tarfile and hashlib accept our archives in every compression: every sha1 in
/// CONTROL/checksums matches its member.
#[test]
fn python_reads_and_checks_our_archives() {
    let server = FakeServer::new(30, true);
    let out = tempfile::tempdir().unwrap();
    let check = r#"
import hashlib, sys, tarfile
t = tarfile.open(sys.argv[1])
sums = {}
for line in t.extractfile("CONTROL/checksums").read().decode().splitlines():
    s, p = line.split(" ", 1)
    sums[p] = s
n = 0
for m in t.getmembers():
    if m.isfile() and m.name.startswith("CONTENT"):
        assert hashlib.sha1(t.extractfile(m).read()).hexdigest() == sums[m.name], m.name
        n += 1
names = t.getnames()
assert names[-2:] == ["CONTROL/checksums", "CONTROL/sysinfo"], names[-2:]
info = dict(l.split(": ", 1) for l in t.extractfile("CONTROL/sysinfo").read().decode().splitlines())
assert set(info) == {"hostname", "fqdn", "domainname", "distribution", "sysVersion", "distributionId", "opsiVersion"}, info
print(n)
"#;
    for c in ["bz2", "gz", "none"] {
        let archive = out.path().join(format!("a.{c}"));
        ok(bin(server.root()).args(["create", "-c", c]).arg(&archive));
        let n: usize = python(&["-c".as_ref(), check.as_ref(), archive.as_os_str()])
            .trim()
            .parse()
            .unwrap();
        assert!(n > 90, "{c}: only {n} files checked");
        if c != "none" {
            let tool = if c == "bz2" { "bzip2" } else { "gzip" };
            let st = Command::new(tool).arg("-t").arg(&archive).status().unwrap();
            assert!(st.success(), "{tool} -t rejects our archive");
        }
    }
}

/// An archive written in the original's style by python3 restores with our tool.
#[test]
fn original_style_archive_restores() {
    let server = FakeServer::new(20, false);
    let out = tempfile::tempdir().unwrap();
    let sysinfo = out.path().join("sysinfo");
    std::fs::write(
        &sysinfo,
        "hostname: opsiserver\nfqdn: opsiserver.example.org\n",
    )
    .unwrap();
    let archive = out.path().join("py.tar.bz2");
    python(&[
        fixture("original_style.py").as_os_str(),
        server.root().as_os_str(),
        archive.as_os_str(),
        "bz2".as_ref(),
        sysinfo.as_os_str(),
    ]);
    let listed = ok(bin(server.root()).arg("list").arg(&archive));
    assert!(
        listed.contains("contains: configuration, dhcp, file"),
        "{listed}"
    );
    let target = tempfile::tempdir().unwrap();
    ok(bin(target.path())
        .args(["restore", "--configuration", "--backends", "all", "--force"])
        .arg(&archive));
    for sub in ["etc/opsi", "var/lib/opsi/config"] {
        common::tree::assert_same(&server.root().join(sub), &target.path().join(sub));
    }
}

/// The genuine archives verify, list, and restore to the tree their list.json describes.
#[test]
fn golden_archives_verify_list_and_restore() {
    let listing: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixture("golden/opsi-backup-bz2.tar.bz2.list.json")).unwrap(),
    )
    .unwrap();
    for name in [
        "opsi-backup-bz2.tar.bz2",
        "opsi-backup-gz.tar.gz",
        "opsi-backup-none.tar",
    ] {
        let archive = fixture(&format!("golden/{name}"));
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            ok(bin(dir.path()).arg("verify").arg(&archive)).trim(),
            "Verified"
        );
        let listed = ok(bin(dir.path()).arg("list").arg(&archive));
        assert!(
            listed
                .trim()
                .ends_with("contains: configuration, dhcp, file"),
            "{listed}"
        );
        ok(bin(dir.path())
            .args(["restore", "--configuration", "--force"])
            .arg(&archive));
        for m in listing["members"].as_array().unwrap() {
            let member = m["name"].as_str().unwrap();
            let dest = if let Some(r) = member.strip_prefix("CONTENT/CONF") {
                format!("etc/opsi{r}")
            } else if let Some(r) = member.strip_prefix("CONTENT/BACKENDS/FILE/file") {
                format!("var/lib/opsi/config{r}")
            } else if member.starts_with("CONTENT/BACKENDS/DHCP/") {
                "etc/dhcp/dhcpd.conf".into()
            } else {
                continue;
            };
            let p = dir.path().join(&dest);
            let md = std::fs::symlink_metadata(&p)
                .unwrap_or_else(|_| panic!("{name}: {dest} not restored"));
            let mode = u32::from_str_radix(m["mode"].as_str().unwrap().trim_start_matches("0o"), 8)
                .unwrap();
            match m["type"].as_str().unwrap() {
                "file" => {
                    let data = std::fs::read(&p).unwrap();
                    let sha = hex::encode(<sha1::Sha1 as sha1::Digest>::digest(&data));
                    assert_eq!(Some(sha.as_str()), m["sha1"].as_str(), "{dest}");
                    assert_eq!(
                        std::os::unix::fs::PermissionsExt::mode(&md.permissions()) & 0o7777,
                        mode,
                        "{dest}"
                    );
                    let mtime = m["mtime"].as_f64().unwrap();
                    assert_eq!(
                        std::os::unix::fs::MetadataExt::mtime(&md),
                        mtime as i64,
                        "{dest}"
                    );
                }
                "dir" => assert!(md.is_dir(), "{dest}"),
                "symlink" => assert!(md.file_type().is_symlink(), "{dest}"),
                other => panic!("unexpected type {other}"),
            }
        }
    }
}

#[test]
fn genuine_plain_archive_verifies_without_any_server() {
    let archive = fixture("golden/opsi-backup-none.tar");
    let n = python(&[
        "-c".as_ref(),
        "import tarfile,sys;print(len(tarfile.open(sys.argv[1]).getmembers()))".as_ref(),
        archive.as_os_str(),
    ]);
    assert_eq!(n.trim(), "46");
    let (code, out, _) = run(bin(Path::new("/nonexistent")).arg("verify").arg(&archive));
    assert_eq!((code, out.trim()), (0, "Verified"));
}
