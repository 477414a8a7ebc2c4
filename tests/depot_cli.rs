//! The server's bulk data as backends of repository snapshots (`--backends depot`,
//! `workbench`, `repository`, `tftp`): paths from the server's own configuration, nightly
//! creates that do not read unchanged files, restore of one product or the whole depot,
//! export beside the archive, and the trust rules for the configured paths.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::fake_server::{set_mtime, write, FakeServer, SERVER};
use common::{ok, repo_bin, run, tree};

const T0: i64 = 1_733_000_000;

/// Pseudo-random bytes (a depot's installers do not compress).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A server whose depot, workbench (moved to /srv/workbench by its depot ini), package
/// repository and TFTP root hold a few products of mixed sizes.
fn server() -> FakeServer {
    let s = FakeServer::new(3, false);
    write(
        &s.p(&format!("/var/lib/opsi/config/depots/{SERVER}.ini")),
        "[depotserver]\ndescription = Hauptdepot\ndepotlocalurl = file:///var/lib/opsi/depot\n\
         depotremoteurl = smb://opsiserver/opsi_depot\nrepositorylocalurl = file:///var/lib/opsi/repository\n\
         workbenchlocalurl = file:///srv/workbench\nisMasterDepot = True\n",
        0o660,
        T0,
    );
    write(
        &s.p("/etc/opsi/opsipxeconfd.conf"),
        "# Default:\n#   pxe config dir = /tftpboot/opsi/opsi-linux-bootimage/cfg\n\n\
         pxe config dir = /tftpboot/opsi/opsi-linux-bootimage/cfg\nlog level = 5\n",
        0o644,
        T0,
    );
    let depot = s.p("/var/lib/opsi/depot");
    // Above 1 MiB: cut with the chunk sizes for large files (spec "Large files of bulk
    // data"), so the restores below read such chunks back.
    write(
        &depot.join("win10-x64/installfiles/sources/install.wim"),
        noise(1, 9 << 20),
        0o644,
        T0,
    );
    write(
        &depot.join("win10-x64/installfiles/setup.exe"),
        noise(2, 70_000),
        0o755,
        T0,
    );
    write(
        &depot.join("win10-x64/setup.opsiscript"),
        "Message \"Installing\"\n",
        0o660,
        T0,
    );
    write(
        &depot.join("win10-x64/drivers/net/e1000.inf"),
        "[Version]\n",
        0o640,
        T0 + 5,
    );
    std::os::unix::fs::symlink("installfiles/setup.exe", depot.join("win10-x64/setup.lnk"))
        .unwrap();
    write(
        &depot.join("firefox/Firefox Setup 115.exe"),
        noise(3, 200_000),
        0o644,
        T0,
    );
    write(
        &depot.join("firefox/setup.opsiscript"),
        "Files_copy\n",
        0o660,
        T0,
    );
    write(&depot.join("7zip/7z.msi"), noise(4, 1500), 0o644, T0);
    fs::create_dir_all(depot.join("7zip/empty")).unwrap();
    write(
        &s.p("/srv/workbench/firefox/OPSI/control"),
        "[Product]\nid: firefox\n",
        0o664,
        T0,
    );
    write(
        &s.p("/var/lib/opsi/repository/firefox_115.0-1.opsi"),
        noise(5, 120_000),
        0o644,
        T0,
    );
    write(
        &s.p("/var/lib/opsi/repository/firefox_115.0-1.opsi.md5"),
        "abc\n",
        0o644,
        T0,
    );
    write(
        &s.p("/tftpboot/opsi/opsi-linux-bootimage/cfg/install-grub-x64"),
        "linux x\n",
        0o644,
        T0,
    );
    write(&s.p("/tftpboot/opsi/grub.efi"), noise(6, 9000), 0o644, T0);
    settle_dirs(&s);
    s
}

/// Gives every directory and symlink of the bulk data a whole-microsecond mtime: the archive
/// format keeps times as Python floats (`str(st_mtime)`), exact to about a microsecond, not to
/// the ns (a link made now came back 1 µs off in one run).
fn settle_dirs(s: &FakeServer) {
    for top in [
        "/var/lib/opsi/depot",
        "/srv/workbench",
        "/var/lib/opsi/repository",
        "/tftpboot/opsi",
    ] {
        for e in walkdir::WalkDir::new(s.p(top)) {
            let e = e.unwrap();
            if e.file_type().is_dir() || e.file_type().is_symlink() {
                set_mtime(e.path(), T0 + 7, 250_000_000);
            }
        }
    }
}

const DATA: [&str; 8] = [
    "--backends",
    "depot",
    "--backends",
    "workbench",
    "--backends",
    "repository",
    "--backends",
    "tftp",
];

/// Regular files below `p`, not following links.
fn files(p: &Path) -> usize {
    walkdir::WalkDir::new(p)
        .into_iter()
        .filter(|e| e.as_ref().unwrap().file_type().is_file())
        .count()
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap()
}

/// Two nights, a product restored alone, the whole depot restored, export beside the archive.
#[test]
fn nights_restore_and_export() {
    let s = server();
    let root = s.root();
    let repo = tempfile::tempdir().unwrap();
    let repo = repo.path().join("r");
    ok(repo_bin(root, &repo).arg("init"));
    let depot = s.p("/var/lib/opsi/depot");
    let data_dirs = [
        depot.clone(),
        s.p("/srv/workbench"),
        s.p("/var/lib/opsi/repository"),
        s.p("/tftpboot/opsi"),
    ];

    ok(repo_bin(root, &repo).arg("create").args(DATA).arg("--json"));
    let snaps = common::snapshots(root, &repo);
    let backends = snaps[0]["backends"].to_string();
    for kind in ["configuration", "depot", "workbench", "repository", "tftp"] {
        assert!(backends.contains(kind), "{kind} not in {backends}");
    }

    // The second night: one product changed, one added.
    write(
        &depot.join("firefox/setup.opsiscript"),
        "Files_copy\nWinBatch\n",
        0o660,
        T0 + 99,
    );
    write(
        &depot.join("libreoffice/LibreOffice.msi"),
        noise(7, 50_000),
        0o644,
        T0,
    );
    write(
        &depot.join("libreoffice/setup.opsiscript"),
        "Msi\n",
        0o660,
        T0,
    );
    settle_dirs(&s);
    let out = ok(repo_bin(root, &repo).arg("create").args(DATA).arg("--json"));
    let all: usize = files(&s.p("/etc/opsi")) + data_dirs.iter().map(|d| files(d)).sum::<usize>();
    assert_eq!(
        json(&out)["unchanged_files"].as_u64().unwrap() as usize,
        all - 3,
        "every file but the changed and the two new ones is taken from the parent unread"
    );
    // diff names the products: libreoffice added, firefox changed, the others not listed.
    let ids: Vec<String> = common::snapshots(root, &repo)
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    let out = ok(repo_bin(root, &repo).args(["diff", &ids[0], &ids[1]]));
    assert!(
        out.contains("product libreoffice in the depot added: 2 files added")
            && out.contains(
                "product firefox in the depot changed: 0 files added, 0 removed, 1 changed"
            )
            && out.contains("depot products: 1 added, 0 removed, 1 changed")
            && !out.contains("product win10-x64 in the depot added"),
        "{out}"
    );
    let night2 = tree::read(&depot);
    let win10 = tree::read(&depot.join("win10-x64"));
    let others: Vec<_> = data_dirs[1..].iter().map(|d| tree::read(d)).collect();

    // Damage the product, and firefox, which a restore of win10-x64 alone leaves as it is.
    fs::remove_file(depot.join("win10-x64/installfiles/setup.exe")).unwrap();
    fs::write(depot.join("win10-x64/setup.opsiscript"), "broken").unwrap();
    fs::write(depot.join("win10-x64/junk.tmp"), "x").unwrap();
    fs::set_permissions(
        depot.join("win10-x64/drivers"),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    fs::write(depot.join("firefox/setup.opsiscript"), "local edit").unwrap();
    ok(repo_bin(root, &repo).args([
        "restore",
        "latest",
        "--backends",
        "depot",
        "--product",
        "win10-x64",
        "--force",
    ]));
    assert_eq!(tree::read(&depot.join("win10-x64")), win10);
    assert_eq!(
        fs::read_to_string(depot.join("firefox/setup.opsiscript")).unwrap(),
        "local edit",
        "only the product's directory is replaced"
    );

    // The whole depot, after more damage.
    fs::remove_dir_all(depot.join("libreoffice")).unwrap();
    fs::write(depot.join("7zip/7z.msi"), "truncated").unwrap();
    ok(repo_bin(root, &repo).args(["restore", "latest", "--backends", "depot", "--force"]));
    assert_eq!(tree::read(&depot), night2);
    for (d, before) in data_dirs[1..].iter().zip(&others) {
        assert_eq!(&tree::read(d), before, "{} untouched", d.display());
    }

    // Elsewhere, with --target.
    let elsewhere = s.p("/srv/restored-workbench");
    ok(repo_bin(root, &repo)
        .args([
            "restore",
            "latest",
            "--backends",
            "workbench",
            "--force",
            "--target",
        ])
        .arg(&elsewhere));
    assert_eq!(tree::read(&elsewhere), others[0]);

    // Export: the archive is the original's; the bulk data lies beside it as plain tars.
    let out_dir = tempfile::tempdir().unwrap();
    let archive = out_dir.path().join("opsiserver.tar.bz2");
    ok(repo_bin(root, &repo)
        .args(["export", "latest"])
        .arg(&archive));
    ok(common::bin(root).arg("verify").arg(&archive));
    for part in ["depot", "workbench", "repository", "tftp"] {
        assert!(
            out_dir
                .path()
                .join(format!("opsiserver.{part}.tar"))
                .is_file(),
            "{part}"
        );
    }
    // The original's verify: every CONTROL/checksums line names a member whose sha1 it is,
    // and every CONTENT file has its line; nothing else is in the archive.
    let check_archive = r#"
import hashlib, sys, tarfile
t = tarfile.open(sys.argv[1])
sums = dict(reversed(l.split(" ", 1)) for l in t.extractfile("CONTROL/checksums").read().decode().splitlines())
names = t.getnames()
assert all(n.startswith(("CONTENT/", "CONTROL/")) for n in names), [n for n in names if not n.startswith("CONT")][:3]
for p, s in sums.items():
    assert hashlib.sha1(t.extractfile(t.getmember(p)).read()).hexdigest() == s, p
for m in t.getmembers():
    if m.isfile() and m.name.startswith("CONTENT"):
        assert m.name in sums, m.name
print(len(sums))
"#;
    let py = Command::new("python3")
        .args(["-c", check_archive])
        .arg(&archive)
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let check_tar = r#"
import hashlib, os, sys, tarfile
t = tarfile.open(sys.argv[1])
base = sys.argv[2]
n = 0
for m in t.getmembers():
    assert m.name == "depot" or m.name.startswith("depot/"), m.name
    live = os.path.join(base, m.name[len("depot"):].lstrip("/"))
    st = os.lstat(live)
    assert int(m.mtime) == int(st.st_mtime), m.name
    if m.isfile():
        assert t.extractfile(m).read() == open(live, "rb").read(), m.name
        assert m.mode == st.st_mode & 0o7777, m.name
        n += 1
    elif m.issym():
        assert m.linkname == os.readlink(live), m.name
print(n)
"#;
    let py = Command::new("python3")
        .args(["-c", check_tar])
        .arg(out_dir.path().join("opsiserver.depot.tar"))
        .arg(&depot)
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&py.stdout).trim(),
        files(&depot).to_string()
    );
    let gnu = Command::new("tar")
        .arg("-tf")
        .arg(out_dir.path().join("opsiserver.depot.tar"))
        .output()
        .unwrap();
    assert!(
        gnu.status.success()
            && String::from_utf8_lossy(&gnu.stdout).contains("depot/win10-x64/setup.lnk")
    );

    // An archive never holds the bulk data: restoring it from one is refused.
    let (code, _, err) = run(common::bin(root)
        .args(["restore", "--backends", "depot", "--force"])
        .arg(&archive));
    assert_ne!(code, 0);
    assert!(err.contains("archives never hold depot"), "{err}");
}

/// The toml's `[create] backends` and `[exclude]` patterns: matching paths are left out.
#[test]
fn toml_backends_and_excludes() {
    let s = server();
    let root = s.root();
    let repo = tempfile::tempdir().unwrap();
    let repo = repo.path().join("r");
    write(
        &s.p("/var/lib/opsi/depot/firefox/tmp/partial.bin"),
        "x",
        0o644,
        T0,
    );
    write(
        &s.p("/var/lib/opsi/depot/7zip/download.part"),
        "x",
        0o644,
        T0,
    );
    write(
        &s.p("/etc/opsi/opsi-backup.toml"),
        format!(
            "repository = \"{}\"\n[create]\nbackends = [\"depot\"]\n[exclude]\nall = [\"*.part\"]\ndepot = [\"*/tmp/*\"]\n",
            repo.display()
        ),
        0o644,
        T0,
    );
    ok(common::bin(root).arg("init"));
    ok(common::bin(root).arg("create"));
    let snaps = common::snapshots(root, &repo);
    assert_eq!(
        snaps[0]["backends"],
        serde_json::json!(["configuration", "depot"])
    );
    let restored = s.p("/srv/check");
    ok(common::bin(root)
        .args([
            "restore",
            "latest",
            "--backends",
            "depot",
            "--force",
            "--target",
        ])
        .arg(&restored));
    assert!(restored.join("firefox/setup.opsiscript").is_file());
    assert!(
        restored.join("firefox/tmp").is_dir(),
        "the directory itself is kept"
    );
    assert!(!restored.join("firefox/tmp/partial.bin").exists());
    assert!(!restored.join("7zip/download.part").exists());
}

/// Configured paths are untrusted: only file:// URLs inside the root and off the system
/// directories; refusals name the setting and its file. Nothing is written before.
#[test]
fn configured_paths_are_confined() {
    let s = server();
    let root = s.root();
    let repo = tempfile::tempdir().unwrap();
    let repo = repo.path().join("r");
    ok(repo_bin(root, &repo).arg("init"));
    let ini = s.p(&format!("/var/lib/opsi/config/depots/{SERVER}.ini"));
    for (url, why) in [
        ("file:///etc", "system directory"),
        ("file:///../../tmp/x", "outside the root"),
        ("smb://server/opsi_depot", "only file:// URLs"),
    ] {
        fs::write(&ini, format!("[depotserver]\ndepotlocalurl = {url}\n")).unwrap();
        let (code, _, err) = run(repo_bin(root, &repo).args(["create", "--backends", "depot"]));
        assert_ne!(code, 0, "{url}");
        assert!(
            err.contains("`depotLocalUrl`") && err.contains(&format!("{SERVER}.ini")),
            "{url}: {err}"
        );
        assert!(err.contains(why), "{url}: {err}");
    }
    assert!(common::snapshots(root, &repo).is_empty());

    // Without a repository: refused before anything is read or written.
    let cwd = tempfile::tempdir().unwrap();
    let (code, _, err) =
        run(common::bin(root)
            .current_dir(cwd.path())
            .args(["create", "--backends", "tftp"]));
    assert_ne!(code, 0);
    assert!(err.contains("needs a repository"), "{err}");
    assert_eq!(
        fs::read_dir(cwd.path()).unwrap().count(),
        0,
        "no archive begun"
    );
}

/// `auto` and `all` keep the original's meaning: they never take the bulk data.
#[test]
fn auto_and_all_take_no_bulk_data() {
    let s = server();
    let root = s.root();
    let repo = tempfile::tempdir().unwrap();
    let repo = repo.path().join("r");
    ok(repo_bin(root, &repo).arg("init"));
    // `all` takes the MySQL backend too, which this test has no database for.
    fs::remove_file(s.p("/etc/opsi/backends/mysql.conf")).unwrap();
    for b in ["auto", "all"] {
        ok(repo_bin(root, &repo).args(["create", "--backends", b]));
    }
    for snap in common::snapshots(root, &repo) {
        let b = snap["backends"].to_string();
        assert!(!b.contains("depot") && !b.contains("tftp"), "{b}");
    }
}

/// A nightly `create` of the configuration and a separate one of the depot are two series:
/// the depot's night takes the depot's last night as its parent (nothing unchanged is read
/// again, though a configuration backup came in between), and `forget --keep-last 1` keeps
/// the newest of each, not just the newest snapshot of the host.
#[test]
fn separate_depot_creates_are_a_series_of_their_own() {
    let s = server();
    let root = s.root();
    let repo = tempfile::tempdir().unwrap();
    let repo = repo.path().join("r");
    ok(repo_bin(root, &repo).arg("init"));
    let depot_night = || {
        let out = ok(repo_bin(root, &repo).args(["create", "--backends", "depot", "--json"]));
        json(&out)
    };
    let config_night = || ok(repo_bin(root, &repo).args(["create", "--backends", "file"]));
    depot_night();
    config_night();
    let second = depot_night();
    let depot_files = files(&s.p("/var/lib/opsi/depot")) + files(&s.p("/etc/opsi"));
    assert_eq!(
        second["unchanged_files"].as_u64().unwrap() as usize,
        depot_files,
        "the depot's parent is the depot's last night, not the configuration's: {second}"
    );
    config_night();
    ok(repo_bin(root, &repo).args(["forget", "--keep-last", "1"]));
    let kept: Vec<String> = common::snapshots(root, &repo)
        .iter()
        .map(|s| s["backends"].to_string())
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(kept.iter().any(|b| b.contains("depot")), "{kept:?}");
    assert!(kept.iter().any(|b| !b.contains("depot")), "{kept:?}");
}

/// The pack files of a repository, by name.
fn packs(repo: &Path) -> std::collections::BTreeSet<std::path::PathBuf> {
    walkdir::WalkDir::new(repo.join("packs"))
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .filter(|p| p.extension().is_some_and(|x| x == "pack"))
        .collect()
}

/// A restore of one product reads that product alone (and what checks it): a damaged chunk
/// of another product does not stop it, while a restore of the whole depot, or of the
/// damaged product, fails on it and touches nothing.
#[test]
fn a_product_restore_reads_that_product_alone() {
    let s = server();
    let root = s.root();
    let repo = tempfile::tempdir().unwrap();
    let repo = repo.path().join("r");
    ok(repo_bin(root, &repo).arg("init"));
    ok(repo_bin(root, &repo).args(["create", "--backends", "depot"]));
    // The large product arrives the next night: its chunks lie in that night's packs alone.
    let depot = s.p("/var/lib/opsi/depot");
    for i in 0..3 {
        write(
            &depot.join(format!("bigapp/part{i}.bin")),
            noise(100 + i, 2 << 20),
            0o644,
            T0,
        );
    }
    settle_dirs(&s);
    let before = packs(&repo);
    ok(repo_bin(root, &repo).args(["create", "--backends", "depot"]));
    let new: Vec<_> = packs(&repo).difference(&before).cloned().collect();
    assert!(!new.is_empty());

    // Damage the largest group of those packs (the metadata's groups are small): one byte in
    // the middle of its stored bytes.
    let index = rusqlite::Connection::open(repo.join("index.sqlite")).unwrap();
    let mut damaged = None;
    for pack in &new {
        let name = pack.file_stem().unwrap().to_str().unwrap();
        let g: Option<(i64, i64, i64)> = index
            .query_row(
                "SELECT g.offset, g.stored_len, g.plain_len FROM groups g \
                 JOIN packs p ON p.id = g.pack WHERE p.name = ?1 \
                 ORDER BY g.plain_len DESC LIMIT 1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .ok();
        if let Some((offset, stored, plain)) = g {
            if plain > 1 << 20 && damaged.is_none() {
                damaged = Some((pack.clone(), (offset + stored / 2) as usize));
            }
        }
    }
    drop(index);
    let (pack, at) = damaged.expect("a large group of bigapp's data");
    let mut bytes = fs::read(&pack).unwrap();
    bytes[at] ^= 0x40;
    fs::set_permissions(&pack, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&pack, bytes).unwrap();

    // The whole depot and the damaged product: refused, naming the pack; nothing touched.
    fs::write(depot.join("7zip/7z.msi"), "local edit").unwrap();
    let live = tree::read(&depot);
    for extra in [&[][..], &["--product", "bigapp"][..]] {
        let (code, _, err) = run(repo_bin(root, &repo)
            .args(["restore", "latest", "--backends", "depot", "--force"])
            .args(extra));
        assert_ne!(code, 0, "{extra:?}");
        assert!(
            err.contains("pack ") && (err.contains("damaged") || err.contains("cannot be read")),
            "{extra:?}: {err}"
        );
        assert_eq!(tree::read(&depot), live, "{extra:?}: nothing touched");
    }

    // Another product: restored, its chunks checked, bigapp's never read.
    ok(repo_bin(root, &repo).args([
        "restore",
        "latest",
        "--backends",
        "depot",
        "--product",
        "7zip",
        "--force",
    ]));
    assert_eq!(fs::read(depot.join("7zip/7z.msi")).unwrap(), noise(4, 1500));
    assert!(depot.join("7zip/empty").is_dir());
    // The TFTP files alone do not need the depot either (the snapshot holds none: refused
    // by the plan, after a survey that read no depot chunk).
    let (code, _, err) =
        run(repo_bin(root, &repo).args(["restore", "latest", "--backends", "tftp", "--force"]));
    assert_ne!(code, 0);
    assert!(err.contains("holds no tftp data"), "{err}");
}

/// A restore fails after files went to the writer threads (which create and write them
/// while the backup is read on): at a writer's third or last file (injected, test-only), at a
/// damaged chunk near the end of a large file whose first pieces a writer has written
/// already. Either way the live depot and what lies beside it stay as they were, down to
/// the mtime of their directory, with no staging left behind.
#[test]
#[cfg_attr(
    not(feature = "crash-points"),
    ignore = "needs --features crash-points"
)]
fn a_restore_failing_while_writers_write_touches_nothing() {
    let s = server();
    let root = s.root();
    let repo = tempfile::tempdir().unwrap();
    let repo = repo.path().join("r");
    ok(repo_bin(root, &repo).arg("init"));
    ok(repo_bin(root, &repo).args(["create", "--backends", "depot"]));
    // The next night's one new file: 9 MiB, written directly past the page cache, in
    // groups of 4 MiB that lie in that night's packs alone.
    let depot = s.p("/var/lib/opsi/depot");
    write(&depot.join("bigapp/big.bin"), noise(42, 9 << 20), 0o644, T0);
    settle_dirs(&s);
    let before = packs(&repo);
    ok(repo_bin(root, &repo).args(["create", "--backends", "depot"]));
    let new: Vec<_> = packs(&repo).difference(&before).cloned().collect();

    fs::write(depot.join("7zip/7z.msi"), "local edit").unwrap();
    let parent = s.p("/var/lib/opsi");
    let live = tree::read(&parent);
    let restore = |fail_at: Option<&str>| {
        let mut c = repo_bin(root, &repo);
        c.args(["restore", "latest", "--backends", "depot", "--force"]);
        if let Some(at) = fail_at {
            c.env("OPSI_BACKUP_FAIL_AT", at);
        }
        run(&mut c)
    };

    // The third file, found failed when the next one is handed over; the last, found
    // failed only once every writer is done.
    for n in [3, files(&depot)] {
        let at = format!("restore-write-{n}");
        let (code, _, err) = restore(Some(&at));
        assert_ne!(code, 0, "{at}");
        assert!(err.contains(&format!("injected failure at {at}")), "{err}");
        assert_eq!(
            tree::read(&parent),
            live,
            "{at}: a writer's failure touched the server"
        );
    }

    // The last large group of big.bin (the metadata's groups are small): damaged in its
    // middle, so that the reader meets it after handing 4 MiB of the file to a writer.
    let index = rusqlite::Connection::open(repo.join("index.sqlite")).unwrap();
    let mut last = None;
    for pack in &new {
        let name = pack.file_stem().unwrap().to_str().unwrap();
        let g: Option<(i64, i64)> = index
            .query_row(
                "SELECT g.offset, g.stored_len FROM groups g JOIN packs p ON p.id = g.pack \
                 WHERE p.name = ?1 AND g.plain_len > 1048576 ORDER BY g.offset DESC LIMIT 1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .ok();
        if let Some((offset, stored)) = g {
            assert!(offset > 0 && last.is_none(), "big.bin lies in one pack");
            last = Some((pack.clone(), (offset + stored / 2) as usize));
        }
    }
    drop(index);
    let (pack, at) = last.expect("a large group of big.bin");
    let mut bytes = fs::read(&pack).unwrap();
    bytes[at] ^= 0x40;
    fs::set_permissions(&pack, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&pack, bytes).unwrap();
    let (code, _, err) = restore(None);
    assert_ne!(code, 0);
    assert!(
        err.contains("pack ") && err.contains("big.bin") && err.contains("damaged"),
        "{err}"
    );
    assert_eq!(
        tree::read(&parent),
        live,
        "a damaged chunk touched the server"
    );
}

/// `diff` of two snapshots reads no bulk data whose chunks are the same in both: with the
/// largest group of an older night's packs damaged, it answers as before, byte for byte. Files
/// added and removed at several depths (`a`, `a/...`, `a-b`, `a.b` sort otherwise as strings
/// than as a walk does), one rewritten with the same bytes (a new inode, read again), one of
/// the same size with other bytes, one with another mode.
#[test]
fn diff_reads_only_what_differs() {
    let s = server();
    let root = s.root();
    let repo = tempfile::tempdir().unwrap();
    let repo = repo.path().join("r");
    ok(repo_bin(root, &repo).arg("init"));
    let depot = s.p("/var/lib/opsi/depot");
    for i in 0..2 {
        write(
            &depot.join(format!("bigapp/part{i}.bin")),
            noise(200 + i, 2 << 20),
            0o644,
            T0,
        );
    }
    settle_dirs(&s);
    ok(repo_bin(root, &repo).args(["create", "--backends", "depot"]));
    let night0 = packs(&repo);

    let tree = depot.join("tree");
    for (path, seed, len) in [
        ("a/x", 1, 300_000),
        ("a/y/deep", 2, 1000),
        ("a-b/f", 3, 5000),
        ("a.b/f", 4, 700),
    ] {
        write(&tree.join(path), noise(seed, len), 0o644, T0);
    }
    settle_dirs(&s);
    ok(repo_bin(root, &repo).args(["create", "--backends", "depot"]));

    let aside = s.p("/var/lib/opsi/x.tmp");
    write(&aside, noise(1, 300_000), 0o644, T0);
    fs::rename(&aside, tree.join("a/x")).unwrap();
    write(&tree.join("a/w"), "added before x", 0o644, T0);
    write(&tree.join("a-b/g/h/i"), "added deep", 0o644, T0);
    fs::remove_file(tree.join("a/y/deep")).unwrap();
    write(&tree.join("a-b/f"), noise(33, 5000), 0o644, T0);
    fs::set_permissions(tree.join("a.b/f"), fs::Permissions::from_mode(0o600)).unwrap();
    settle_dirs(&s);
    ok(repo_bin(root, &repo).args(["create", "--backends", "depot"]));
    let ids: Vec<String> = common::snapshots(root, &repo)
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    let diff = |json: bool| {
        let mut c = repo_bin(root, &repo);
        c.args(["diff", &ids[1], &ids[2]]);
        if json {
            c.arg("--json");
        }
        ok(&mut c)
    };
    let (text, as_json) = (diff(false), diff(true));
    for line in [
        "+  DATA/DEPOT/tree/a/w  (product tree in the depot)",
        "-  DATA/DEPOT/tree/a/y/deep  (product tree in the depot)",
        "M  DATA/DEPOT/tree/a-b/f  (product tree in the depot)",
        "+  DATA/DEPOT/tree/a-b/g  (product tree in the depot)",
        "+  DATA/DEPOT/tree/a-b/g/h/i  (product tree in the depot)",
        "U  DATA/DEPOT/tree/a.b/f  (product tree in the depot)",
        "product tree in the depot changed: 2 files added, 1 removed, 2 changed",
        "depot products: 0 added, 0 removed, 1 changed",
    ] {
        assert!(text.contains(line), "{line:?} not in\n{text}");
    }
    assert!(
        !text.contains("tree/a/x") && !text.contains("bigapp"),
        "{text}"
    );
    let members: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split("  ").nth(1))
        .filter(|m| m.starts_with("DATA/"))
        .collect();
    let mut sorted = members.clone();
    sorted.sort();
    assert_eq!(members, sorted, "listed in the order of their names");

    // Damage the largest group of the first night's packs (bigapp's data: in both nights,
    // with the same chunks): a diff that read it would fail.
    let index = rusqlite::Connection::open(repo.join("index.sqlite")).unwrap();
    let (pack, at) = night0
        .iter()
        .filter_map(|pack| {
            let name = pack.file_stem().unwrap().to_str().unwrap();
            index
                .query_row(
                    "SELECT g.offset, g.stored_len, g.plain_len FROM groups g \
                     JOIN packs p ON p.id = g.pack WHERE p.name = ?1 \
                     ORDER BY g.plain_len DESC LIMIT 1",
                    [name],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, i64>(2)?,
                        ))
                    },
                )
                .ok()
                .map(|g| (pack.clone(), g))
        })
        .max_by_key(|(_, g)| g.2)
        .map(|(pack, (offset, stored, _))| (pack, (offset + stored / 2) as usize))
        .expect("a group of the first night");
    drop(index);
    let mut bytes = fs::read(&pack).unwrap();
    bytes[at] ^= 0x40;
    fs::set_permissions(&pack, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&pack, bytes).unwrap();
    let (code, _, err) = run(repo_bin(root, &repo).arg("verify"));
    assert_ne!(code, 0, "verify reads the damaged group: {err}");
    assert_eq!(diff(false), text);
    assert_eq!(diff(true), as_json);
}

/// A tree deeper than the levels a walk keeps their directory open for (`source/tree.rs`,
/// `HANDLE_LEVELS`) is backed up within a small limit of open files: the deeper levels are
/// lstat'ed by path, so the walk holds a bounded number of descriptors however deep it goes.
#[test]
fn a_deep_tree_is_walked_within_a_small_limit_of_open_files() {
    use std::os::unix::process::CommandExt;
    let s = server();
    let root = s.root();
    let repo = tempfile::tempdir().unwrap();
    let repo = repo.path().join("r");
    ok(repo_bin(root, &repo).arg("init"));
    // Each level also holds a file listed after its directory: the level's listing is still
    // being gone through while the walk is below it.
    let mut deep = s.p("/var/lib/opsi/depot/deep");
    for i in 0..100 {
        write(&deep.join(format!("z{i}.txt")), "beside", 0o644, T0);
        deep.push(format!("d{i}"));
    }
    write(&deep.join("leaf.txt"), "at the bottom", 0o644, T0);
    let mut create = repo_bin(root, &repo);
    create.arg("create").args(DATA);
    // SAFETY: setrlimit is async-signal-safe; the closure allocates nothing.
    unsafe {
        create.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 64,
                rlim_max: 64,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    ok(&mut create);
    let listed = ok(repo_bin(root, &repo).args(["list", "--long", "latest"]));
    assert!(
        listed.contains("/d98/d99/leaf.txt"),
        "the deepest file is not in the snapshot:\n{listed}"
    );
}
