//! Encryption at rest through the command line: `init --encrypt`, the password from a file,
//! the environment or nowhere (no terminal), wrong passwords, key files added, changed and
//! removed, nothing of the content or its plain chunk ids in any file of the repository,
//! damage in a group, a trailer, a snapshot file and a key file reported and never used,
//! `copy` plain → encrypted → plain byte for byte, and a downgraded config.json refused.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::fake_server::FakeServer;
use common::{ok, repo_bin, run};

const PW: &str = "correct horse battery staple";

struct Setup {
    server: FakeServer,
    work: tempfile::TempDir,
    pw: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let server = FakeServer::new(30, true);
        let work = tempfile::tempdir().unwrap();
        let pw = work.path().join("pw");
        std::fs::write(&pw, format!("{PW}\n")).unwrap();
        Setup { server, work, pw }
    }
    fn root(&self) -> &Path {
        self.server.root()
    }
    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }
    /// The binary on `repo`, its password from `--password-file`.
    fn enc(&self, repo: &Path) -> Command {
        let mut c = repo_bin(self.root(), repo);
        c.env_remove("OPSI_BACKUP_PASSWORD_FILE")
            .arg("--password-file")
            .arg(&self.pw);
        c
    }
    fn init_encrypted(&self, name: &str) -> PathBuf {
        let repo = self.path(name);
        let out = ok(self.enc(&repo).args(["init", "--encrypt"]));
        assert!(out.contains("created encrypted repository"), "{out}");
        repo
    }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn export(c: &mut Command, id: &str, dest: &Path) -> Vec<u8> {
    ok(c.args(["export", id])
        .arg(dest)
        .args(["-c", "none", "--no-cache"]));
    std::fs::read(dest).unwrap()
}

fn flip(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0x10;
    std::fs::write(path, b).unwrap();
}

fn only_file(dir: &Path) -> PathBuf {
    let mut all = Vec::new();
    files_under(dir, &mut all);
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

/// Nothing of the server's secrets, nor the plain BLAKE3 of a file the repository holds (its
/// chunk id in a plain repository), lies in any file of the encrypted repository, the index
/// included; the repository is format version 6 and works as a plain one does.
#[test]
fn an_encrypted_repository_holds_no_plaintext_and_works() {
    let s = Setup::new();
    let repo = s.init_encrypted("enc");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["version"], 6);
    assert_eq!(config["encryption"]["cipher"], "xchacha20-poly1305");
    assert_eq!(config["encryption"]["kdf"], "argon2id");
    assert!(config["mac"].is_string());
    let key = only_file(&repo.join("keys"));
    let kf: serde_json::Value = serde_json::from_slice(&std::fs::read(&key).unwrap()).unwrap();
    assert_eq!(
        (&kf["kdf"]["m"], &kf["kdf"]["t"], &kf["kdf"]["p"]),
        (&65536.into(), &3.into(), &1.into())
    );

    ok(s.enc(&repo).arg("create"));
    ok(s.enc(&repo).arg("create"));
    let out = ok(s.enc(&repo).arg("verify"));
    assert!(!out.contains("DAMAGE"), "{out}");

    let pckeys = std::fs::read(s.server.p("/etc/opsi/pckeys")).unwrap();
    let line = String::from_utf8(pckeys.clone()).unwrap();
    let secret = line
        .lines()
        .next()
        .unwrap()
        .split(':')
        .nth(1)
        .unwrap()
        .to_string();
    assert_eq!(secret.len(), 32);
    // Below the minimum chunk size: the file is one chunk, its plain id the file's BLAKE3.
    assert!(pckeys.len() < 2048, "{}", pckeys.len());
    let plain_id = blake3::hash(&pckeys);
    let mut files = Vec::new();
    files_under(&repo, &mut files);
    assert!(files.len() > 5, "{files:?}");
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let shown = f.display();
        assert!(
            !contains(&bytes, secret.as_bytes()),
            "{shown} holds a pc key"
        );
        assert!(
            !contains(&bytes, plain_id.as_bytes()),
            "{shown} holds a plain chunk id"
        );
        assert!(
            !contains(&bytes, plain_id.to_hex().as_bytes()),
            "{shown} holds a plain chunk id in hex"
        );
        assert!(
            !contains(&bytes, b"example.org:"),
            "{shown} holds pckeys lines"
        );
    }
    // The export is the plain archive, as from a plain repository.
    let plain = s.path("plain");
    ok(repo_bin(s.root(), &plain).arg("init"));
    ok(repo_bin(s.root(), &plain)
        .arg("copy")
        .arg("--from-repository")
        .arg(&repo)
        .arg("--from-password-file")
        .arg(&s.pw));
    let archive = export(&mut s.enc(&repo), "latest", &s.path("e.tar"));
    assert!(contains(&archive, secret.as_bytes()));
    let from_plain = export(&mut repo_bin(s.root(), &plain), "latest", &s.path("p.tar"));
    assert!(archive == from_plain, "same archive from either repository");
}

/// The password from a file or the environment; a wrong one and a missing one (no
/// terminal to ask on) are usage errors that say so.
#[test]
fn passwords_come_from_a_file_or_the_environment_and_a_wrong_one_is_refused() {
    let s = Setup::new();
    let repo = s.init_encrypted("enc");
    let bare = || {
        let mut c = repo_bin(s.root(), &repo);
        c.env_remove("OPSI_BACKUP_PASSWORD_FILE");
        c
    };
    let (code, _, err) = run(bare().arg("snapshots"));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("is encrypted")
            && err.contains("--password-file")
            && err.contains("no terminal"),
        "{err}"
    );
    let wrong = s.path("wrong");
    std::fs::write(&wrong, "Tr0ub4dor&3\n").unwrap();
    let (code, _, err) = run(bare().arg("--password-file").arg(&wrong).arg("snapshots"));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "wrong password for repository {} (no key file opens with it)",
            repo.display()
        )),
        "{err}"
    );
    let (code, _, err) = run(bare()
        .env("OPSI_BACKUP_PASSWORD_FILE", &wrong)
        .arg("snapshots"));
    assert_eq!(code, 2, "{err}");
    ok(bare().env("OPSI_BACKUP_PASSWORD_FILE", &s.pw).arg("create"));
    assert_eq!(common::snapshots_with(&mut s.enc(&repo)).len(), 1);
    // A plain repository never asks.
    let plain = s.path("plain");
    ok(bare().arg("-r").arg(&plain).arg("init"));
    ok(bare().arg("-r").arg(&plain).arg("snapshots"));
}

/// Several passwords: added, changed, removed; the one in use and the last one stay.
#[test]
fn keys_are_added_changed_and_removed() {
    let s = Setup::new();
    let repo = s.init_encrypted("enc");
    let second = s.path("second");
    std::fs::write(&second, "second password").unwrap();
    let out = ok(s
        .enc(&repo)
        .args(["key", "add", "--new-password-file"])
        .arg(&second));
    assert!(out.contains("added key"), "{out}");
    let as_second = || {
        let mut c = repo_bin(s.root(), &repo);
        c.arg("--password-file").arg(&second);
        c
    };
    let list = ok(as_second().args(["key", "list"]));
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    let in_use: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with('*'))
        .copied()
        .collect();
    assert_eq!(in_use.len(), 1, "{list}");
    let used_id = in_use[0].split_whitespace().nth(1).unwrap().to_string();
    let other_id = lines
        .iter()
        .find(|l| !l.starts_with('*'))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let (code, _, err) = run(as_second().args(["key", "remove", &used_id]));
    assert_ne!(code, 0);
    assert!(err.contains("is the one this password opened"), "{err}");
    // The first password's key removed: the second opens, the first does not.
    ok(as_second().args(["key", "remove", &other_id[..8]]));
    let (code, _, err) = run(s.enc(&repo).arg("snapshots"));
    assert_eq!(code, 2, "{err}");
    // passwd: the second password replaced by a third.
    let third = s.path("third");
    std::fs::write(&third, "third password").unwrap();
    let out = ok(as_second()
        .args(["key", "passwd", "--new-password-file"])
        .arg(&third));
    assert!(out.contains("password changed"), "{out}");
    assert_eq!(run(as_second().arg("snapshots")).0, 2);
    let as_third = || {
        let mut c = repo_bin(s.root(), &repo);
        c.arg("--password-file").arg(&third);
        c
    };
    ok(as_third().arg("create"));
    let list = ok(as_third().args(["key", "list"]));
    assert_eq!(list.lines().count(), 1, "{list}");
    let last = list.split_whitespace().nth(1).unwrap().to_string();
    let (code, _, err) = run(as_third().args(["key", "remove", &last]));
    assert_ne!(code, 0, "{err}");
    // A plain repository has no keys.
    let plain = s.path("plain");
    ok(repo_bin(s.root(), &plain).arg("init"));
    let (code, _, err) = run(repo_bin(s.root(), &plain).args(["key", "list"]));
    assert_ne!(code, 0);
    assert!(err.contains("not encrypted"), "{err}");
}

/// A flipped bit in a group, a trailer, a snapshot file or a key file is damage that verify
/// reports, and data that is never used: even renamed to its new BLAKE3 (what an attacker
/// holding the bucket could do), a changed snapshot file fails its seal.
#[test]
fn damage_to_sealed_objects_is_reported_and_never_used() {
    let s = Setup::new();
    let repo = s.init_encrypted("enc");
    ok(s.enc(&repo).arg("create"));
    let pack = common::largest_pack(&repo);
    let pack_bytes = std::fs::read(&pack).unwrap();
    let keep = |p: &Path| std::fs::read(p).unwrap();

    // A group: its seal fails; verify says so, export refuses.
    flip(&pack, 8 + 100);
    let (code, out, err) = run(s.enc(&repo).args(["verify", "--exit-codes", "detailed"]));
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        out.contains("sealed group") || err.contains("sealed group"),
        "{out}{err}"
    );
    let (code, _, err) = run(s
        .enc(&repo)
        .args(["export", "latest"])
        .arg(s.path("x.tar"))
        .args(["-c", "none", "--no-cache"]));
    assert_ne!(code, 0);
    assert!(err.contains("sealed group"), "{err}");
    std::fs::write(&pack, &pack_bytes).unwrap();

    // The final trailer: the copy holds the table, but the file is not what its name says.
    flip(&pack, pack_bytes.len() - 60);
    let (code, out, err) = run(s.enc(&repo).args(["verify", "--exit-codes", "detailed"]));
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        out.contains("is damaged") || err.contains("is damaged"),
        "{out}{err}"
    );
    std::fs::write(&pack, &pack_bytes).unwrap();
    ok(s.enc(&repo).arg("verify"));

    // A snapshot file, changed and renamed to its new BLAKE3: its sealed segment fails.
    let snap = only_file(&repo.join("snapshots"));
    let snap_bytes = keep(&snap);
    let mut changed = snap_bytes.clone();
    changed[snap_bytes.len() / 2] ^= 0x10;
    let new_name = repo
        .join("snapshots")
        .join(format!("{}.snap", blake3::hash(&changed).to_hex()));
    std::fs::remove_file(&snap).unwrap();
    std::fs::write(&new_name, &changed).unwrap();
    let (code, out, err) = run(s.enc(&repo).arg("rebuild-index"));
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        (out.contains("sealed segment") || err.contains("sealed segment"))
            && (out.contains("authentication failed") || err.contains("authentication failed")),
        "{out}{err}"
    );
    assert!(common::snapshots_with(&mut s.enc(&repo)).is_empty());
    std::fs::remove_file(&new_name).unwrap();
    std::fs::write(&snap, &snap_bytes).unwrap();
    // In place (name kept): verify reports it.
    flip(&snap, snap_bytes.len() / 2);
    let (code, out, err) = run(s.enc(&repo).args(["verify", "--exit-codes", "detailed"]));
    assert_eq!(code, 3, "{out}{err}");
    std::fs::write(&snap, &snap_bytes).unwrap();
    ok(s.enc(&repo).arg("rebuild-index"));

    // A key file of a second password: reported by verify; the first password still opens.
    let second = s.path("second");
    std::fs::write(&second, "second password").unwrap();
    ok(s.enc(&repo)
        .args(["key", "add", "--new-password-file"])
        .arg(&second));
    let mut keys = Vec::new();
    files_under(&repo.join("keys"), &mut keys);
    let mut damaged = None;
    for k in &keys {
        let before = keep(k);
        flip(k, before.len() / 2);
        if run(s.enc(&repo).arg("snapshots")).0 == 0 {
            damaged = Some(k.clone());
            break;
        }
        std::fs::write(k, before).unwrap();
    }
    let damaged = damaged.expect("the first password opens with the other key file damaged");
    let (code, out, err) = run(s.enc(&repo).args(["verify", "--exit-codes", "detailed"]));
    assert_eq!(code, 3, "{out}{err}");
    let id = damaged.file_stem().unwrap().to_string_lossy().to_string();
    assert!(out.contains(&id) || err.contains(&id), "{out}{err}");
    let (code, _, err) = run(repo_bin(s.root(), &repo)
        .arg("--password-file")
        .arg(&second)
        .arg("snapshots"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("damaged"), "{err}");
}

/// plain → encrypted → plain gives the same archives; a second copy of an unchanged night
/// stores next to nothing.
#[test]
fn copy_between_plain_and_encrypted_keeps_every_byte() {
    let s = Setup::new();
    let (a, c) = (s.path("a"), s.path("c"));
    ok(repo_bin(s.root(), &a).arg("init"));
    ok(repo_bin(s.root(), &c).arg("init"));
    let b = s.init_encrypted("b");
    let b2 = s.init_encrypted("b2");
    ok(repo_bin(s.root(), &a).arg("create"));
    let copy = |from: &Path, to: &Path, from_enc: bool, to_enc: bool| {
        let mut cmd = if to_enc {
            s.enc(to)
        } else {
            repo_bin(s.root(), to)
        };
        cmd.arg("copy")
            .arg("--from-repository")
            .arg(from)
            .arg("--json");
        if from_enc {
            cmd.arg("--from-password-file").arg(&s.pw);
        }
        let out = ok(&mut cmd);
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    let first = copy(&a, &b, false, true);
    assert_eq!(first["copied"].as_array().unwrap().len(), 1, "{first}");
    // A night: one client checks in; copied again, only about it is stored.
    let client = s
        .server
        .p("/var/lib/opsi/config/clients/client0003.example.org.ini");
    std::fs::write(&client, "[info]\ndescription = checked in\n").unwrap();
    ok(repo_bin(s.root(), &a).arg("create"));
    let packs_before = common::dir_size(&b.join("packs"));
    let night = copy(&a, &b, false, true);
    let sent = night["copied"][0]["bytes_sent"].as_u64().unwrap();
    let size = night["copied"][0]["from"]["size"].as_u64().unwrap();
    assert!(sent < size / 20, "{sent} of {size}");
    assert!(common::dir_size(&b.join("packs")) - packs_before < 200_000);
    copy(&b, &b2, true, true);
    copy(&b2, &c, true, false);
    ok(s.enc(&b).arg("verify"));
    ok(s.enc(&b2).arg("verify"));
    ok(repo_bin(s.root(), &c).arg("verify"));
    let ids = |r: &Path, enc: bool| -> Vec<String> {
        let mut cmd = if enc { s.enc(r) } else { repo_bin(s.root(), r) };
        common::snapshots_with(&mut cmd)
            .iter()
            .map(|v| v["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (in_a, in_c) = (ids(&a, false), ids(&c, false));
    assert_eq!(in_a.len(), 2);
    assert_eq!(in_c.len(), 2);
    for (x, y) in in_a.iter().zip(&in_c) {
        let from = export(&mut repo_bin(s.root(), &a), x, &s.path("x.tar"));
        let to = export(&mut repo_bin(s.root(), &c), y, &s.path("y.tar"));
        assert!(
            from == to,
            "plain → encrypted → encrypted → plain keeps the archive"
        );
    }
}

/// A plain config.json put in place of an encrypted repository's is refused: while key
/// files lie under keys/, and, with those gone too, while the index remembers.
#[test]
fn a_downgraded_config_is_refused_as_tampering() {
    let s = Setup::new();
    let repo = s.init_encrypted("enc");
    ok(s.enc(&repo).arg("create"));
    let text = std::fs::read_to_string(repo.join("config.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&text).unwrap();
    let obj = config.as_object_mut().unwrap();
    obj.remove("encryption");
    obj.remove("mac");
    obj.remove("checksum");
    obj.insert("version".into(), 5.into());
    std::fs::write(
        repo.join("config.json"),
        serde_json::to_vec(&config).unwrap(),
    )
    .unwrap();
    let (code, _, err) =
        run(repo_bin(s.root(), &repo).args(["snapshots", "--exit-codes", "detailed"]));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("refused as tampering") && err.contains("keys/"),
        "{err}"
    );
    std::fs::rename(repo.join("keys"), s.path("keys-aside")).unwrap();
    let (code, _, err) =
        run(repo_bin(s.root(), &repo).args(["snapshots", "--exit-codes", "detailed"]));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("refused as tampering") && err.contains("index remembers"),
        "{err}"
    );
    // A config changed by someone without the key (the chunker's level) fails its MAC.
    std::fs::rename(s.path("keys-aside"), repo.join("keys")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&text).unwrap();
    config["chunker"]["zstd_level"] = 2.into();
    config.as_object_mut().unwrap().remove("checksum");
    std::fs::write(
        repo.join("config.json"),
        serde_json::to_vec(&config).unwrap(),
    )
    .unwrap();
    let (code, _, err) = run(s.enc(&repo).args(["snapshots", "--exit-codes", "detailed"]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("does not match its MAC"), "{err}");
}

/// The cost of encryption, plain against encrypted on the same server: MEASURE lines for
/// the report. Run by hand: `cargo test --test encrypt_cli measure -- --ignored --nocapture`.
#[test]
#[ignore = "figures for the report; a minute of work"]
fn measure_plain_against_encrypted() {
    let server = FakeServer::new(2000, true);
    let work = tempfile::tempdir().unwrap();
    // MEASURE_KEEP=DIR keeps the repositories there, for a profiler.
    let keep = std::env::var_os("MEASURE_KEEP").map(PathBuf::from);
    let work_dir = keep.clone().unwrap_or_else(|| work.path().to_path_buf());
    let pw = work_dir.join("pw");
    std::fs::write(&pw, PW).unwrap();
    let timed = |c: &mut Command| {
        let t = std::time::Instant::now();
        ok(c);
        t.elapsed().as_secs_f64()
    };
    for enc in [false, true] {
        let repo = work_dir.join(if enc { "enc" } else { "plain" });
        let cmd = || {
            let mut c = repo_bin(server.root(), &repo);
            c.env("OPSI_BACKUP_PASSWORD_FILE", &pw);
            c
        };
        let mut init = cmd();
        init.arg("init");
        if enc {
            init.arg("--encrypt");
        }
        ok(&mut init);
        let open = timed(cmd().arg("snapshots"));
        let first = timed(cmd().arg("create"));
        let again = timed(cmd().arg("create"));
        let verify = timed(cmd().arg("verify"));
        let dest = work_dir.join("x.tar");
        let export =
            timed(
                cmd()
                    .args(["export", "latest"])
                    .arg(&dest)
                    .args(["-c", "none", "--no-cache"]),
            );
        let size =
            common::dir_size(&repo.join("packs")) + common::dir_size(&repo.join("snapshots"));
        eprintln!(
            "MEASURE {}: open {open:.2} s, first create {first:.2} s, unchanged create {again:.2} s, \
             verify {verify:.2} s, export {export:.2} s ({} bytes), packs+snapshots {size} bytes",
            if enc { "encrypted" } else { "plain" },
            std::fs::metadata(&dest).unwrap().len()
        );
    }
    if let Some(k) = keep {
        let _ = std::fs::rename(server.root(), k.join("server"));
    }
}

/// forget and prune in an encrypted repository: the partly used packs are rewritten (their
/// groups opened, sealed anew), the rest deleted; what is kept exports as before.
#[test]
fn prune_rewrites_sealed_packs_and_keeps_snapshots() {
    let s = Setup::new();
    let repo = s.init_encrypted("enc");
    let big = s
        .server
        .p("/var/lib/opsi/config/audit/bigclient.example.org.sw");
    let mut line = 0u64;
    for night in 0..2u64 {
        let mut text = String::new();
        while text.len() < 3_000_000 {
            line += 1;
            text.push_str(&format!(
                "[SOFTWARE_{line}]\nname = package-{night}-{line:x}\n\n"
            ));
        }
        std::fs::write(&big, text).unwrap();
        ok(s.enc(&repo).arg("create"));
    }
    let ids: Vec<String> = common::snapshots_with(&mut s.enc(&repo))
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    let before = export(&mut s.enc(&repo), &ids[1], &s.path("b.tar"));
    ok(s.enc(&repo).args(["forget", &ids[0]]));
    let out = ok(s
        .enc(&repo)
        .args(["prune", "--repack-threshold", "100", "--json"]));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        report["bytes_freed"].as_u64().unwrap() > 100_000,
        "{report}"
    );
    assert!(report["packs_repacked"].as_u64().unwrap() >= 1, "{report}");
    ok(s.enc(&repo).arg("verify"));
    let after = export(&mut s.enc(&repo), &ids[1], &s.path("a.tar"));
    assert!(before == after, "the kept snapshot exports as before");
}

/// A `create` killed at each step of the commit protocol leaves an encrypted repository that
/// verifies and takes the next night, as a plain one does (the seals change no order).
#[test]
fn a_killed_create_leaves_an_encrypted_repository_that_verifies() {
    use std::os::unix::process::ExitStatusExt;
    let s = Setup::new();
    let repo = s.init_encrypted("enc");
    ok(s.enc(&repo).arg("create"));
    let client = s
        .server
        .p("/var/lib/opsi/config/clients/client0003.example.org.ini");
    for (n, point) in [
        "pack-written",
        "pack-synced",
        "pack-renamed",
        "snapshot-written",
        "snapshot-renamed",
    ]
    .into_iter()
    .enumerate()
    {
        std::fs::write(&client, format!("[info]\ndescription = night {n}\n")).unwrap();
        let out = s
            .enc(&repo)
            .env("OPSI_BACKUP_CRASH_AT", point)
            .arg("create")
            .output()
            .unwrap();
        assert_eq!(out.status.signal(), Some(6), "{point}: {out:?}");
        ok(s.enc(&repo).arg("verify"));
    }
    ok(s.enc(&repo).arg("create"));
    ok(s.enc(&repo).arg("verify"));
    // The snapshot whose file was published before the kill counts; the others never began.
    let n = common::snapshots_with(&mut s.enc(&repo)).len();
    assert_eq!(
        n, 3,
        "first night, the one killed after its snapshot file, the last"
    );
}
