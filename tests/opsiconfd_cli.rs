//! `opsiconfd backup` files (issue 21): imported by content as snapshots of their own kind,
//! exported byte for byte through the layers the file name asks for, read back by readers
//! written here from opsiconfd's documented layers (AES-256-GCM with a PBKDF2 key and a
//! 16-byte nonce, an lz4 frame) or by Python's standard library (gzip + JSON). Bad input
//! stores nothing.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};

use aes_gcm::aead::consts::U16;
use aes_gcm::aead::AeadInPlace;
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, KeyInit};
use serde_json::{json, Value};

use common::{bin, ok, run};

const FIXTURE: &str = "tests/fixtures/opsiconfd/opsiconfd-backup.msgpack.lz4";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE)
}

/// A fresh repository in `dir`.
fn init(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    ok(bin(dir).arg("-r").arg(&repo).arg("init"));
    repo
}

fn cmd(dir: &Path, repo: &Path) -> std::process::Command {
    let mut c = bin(dir);
    c.arg("-r")
        .arg(repo)
        .env_remove("OPSI_BACKUP_BACKUP_PASSWORD_FILE")
        .env_remove("OPSI_BACKUP_PASSWORD_FILE");
    c
}

fn lz4_decode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    lz4_flex::frame::FrameDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// opsiconfd's reader of the `.aes` layer, from its documented layout: marker, 32-byte salt,
/// 16-byte tag, 16-byte nonce, ciphertext; PBKDF2-HMAC-SHA256, 200,000 rounds, 32 bytes.
fn aes_decode(bytes: &[u8], password: &str) -> Option<Vec<u8>> {
    let marker = b"{aes-256-gcm-sha256}";
    assert!(bytes.starts_with(marker));
    let p = marker.len();
    let (salt, tag, nonce) = (
        &bytes[p..p + 32],
        &bytes[p + 32..p + 48],
        &bytes[p + 48..p + 64],
    );
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt, 200_000, &mut key);
    let cipher = AesGcm::<Aes256, U16>::new(&key.into());
    let mut data = bytes[p + 64..].to_vec();
    cipher
        .decrypt_in_place_detached(nonce.into(), b"", &mut data, tag.into())
        .ok()?;
    Some(data)
}

/// Every file below the repository with its bytes: what "unchanged" compares.
fn repo_state(repo: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<(PathBuf, Vec<u8>)> = walkdir::WalkDir::new(repo)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .filter(|e| {
            let n = e.file_name().to_string_lossy();
            !n.starts_with("index.sqlite") && !e.path().starts_with(repo.join("locks"))
        })
        .map(|e| (e.path().to_path_buf(), std::fs::read(e.path()).unwrap()))
        .collect();
    v.sort();
    v
}

fn snapshots(dir: &Path, repo: &Path) -> Vec<Value> {
    let out = ok(cmd(dir, repo).args(["snapshots", "--json"]));
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn the_real_file_round_trips_byte_for_byte() {
    let t = tempfile::tempdir().unwrap();
    let repo = init(t.path());
    ok(cmd(t.path(), &repo).arg("import").arg(fixture()));
    let list = snapshots(t.path(), &repo);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["kind"], "opsiconfd");
    assert_eq!(list[0]["host"], "configserver.mycompany.de");
    // meta.timestamp of the file: 2023-07-25 17:12:54 UTC.
    assert_eq!(list[0]["time_rfc3339"], "2023-07-25T17:12:54Z");
    let table = ok(cmd(t.path(), &repo).arg("snapshots"));
    assert!(table.contains("opsiconfd backup"), "{table}");

    let original = lz4_decode(&std::fs::read(fixture()).unwrap());
    assert_eq!(original.len(), 22_815_857);
    for name in ["x.msgpack.lz4", "x.msgpack"] {
        let dest = t.path().join(name);
        ok(cmd(t.path(), &repo).args(["export", "latest"]).arg(&dest));
        let bytes = std::fs::read(&dest).unwrap();
        let doc = if name.ends_with(".lz4") {
            assert_eq!(&bytes[..4], &[0x04, 0x22, 0x4d, 0x18]);
            lz4_decode(&bytes)
        } else {
            bytes
        };
        assert!(doc == original, "{name}: the document differs");
    }
    // A JSON name for a msgpack snapshot: a clear error, no file.
    let dest = t.path().join("y.json.gz");
    let (code, _, err) = run(cmd(t.path(), &repo).args(["export", "latest"]).arg(&dest));
    assert_ne!(code, 0);
    assert!(err.contains("holds a msgpack document"), "{err}");
    assert!(!dest.exists());
    ok(cmd(t.path(), &repo).arg("verify"));
    let out = ok(cmd(t.path(), &repo).args(["verify", "latest"]));
    assert!(out.contains("Verified"), "{out}");
    // Not an opsi-backup archive: restore refuses it.
    let (code, _, err) = run(cmd(t.path(), &repo).args(["restore", "latest"]));
    assert_ne!(code, 0);
    assert!(err.contains("is an opsiconfd backup"), "{err}");
}

#[test]
fn encrypted_files_round_trip_and_bad_ones_store_nothing() {
    let t = tempfile::tempdir().unwrap();
    let repo = init(t.path());
    let pw = t.path().join("pw");
    std::fs::write(&pw, "s3cret pass\n").unwrap();
    ok(cmd(t.path(), &repo).arg("import").arg(fixture()));
    let aes = t.path().join("night.msgpack.lz4.aes");
    ok(cmd(t.path(), &repo)
        .args(["export", "latest"])
        .arg(&aes)
        .arg("--backup-password-file")
        .arg(&pw));
    let bytes = std::fs::read(&aes).unwrap();
    let original = lz4_decode(&std::fs::read(fixture()).unwrap());
    let plain = aes_decode(&bytes, "s3cret pass").expect("opsiconfd's reader decrypts it");
    assert!(lz4_decode(&plain) == original);
    assert!(aes_decode(&bytes, "s3cret pass\n").is_none());

    // Into a second repository: with the password (from the environment) it is the same
    // snapshot content; every bad variant fails clearly and changes nothing.
    let repo2 = t.path().join("repo2");
    ok(bin(t.path()).arg("-r").arg(&repo2).arg("init"));
    let wrong = t.path().join("wrong");
    std::fs::write(&wrong, "other").unwrap();
    let mut tampered = bytes.clone();
    tampered[20 + 40] ^= 1; // a byte of the GCM tag
    let tampered_file = t.path().join("tampered.msgpack.lz4.aes");
    std::fs::write(&tampered_file, &tampered).unwrap();
    let truncated_file = t.path().join("truncated.msgpack.lz4.aes");
    std::fs::write(&truncated_file, &bytes[..bytes.len() - 1000]).unwrap();
    let before = repo_state(&repo2);
    for (file, pwfile, says) in [
        (&aes, &wrong, "wrong password"),
        (&tampered_file, &pw, "does not match"),
        (&truncated_file, &pw, "truncated"),
    ] {
        let (code, _, err) = run(cmd(t.path(), &repo2)
            .arg("import")
            .arg(file)
            .env("OPSI_BACKUP_BACKUP_PASSWORD_FILE", pwfile));
        assert_ne!(code, 0, "{}", file.display());
        assert!(err.contains(says), "{}: {err}", file.display());
        assert!(
            repo_state(&repo2) == before,
            "{}: the repository changed",
            file.display()
        );
    }
    // Encrypted, and no password and no terminal: a clear error.
    let (code, _, err) = run(cmd(t.path(), &repo2).arg("import").arg(&aes));
    assert_ne!(code, 0);
    assert!(err.contains("--backup-password-file"), "{err}");
    ok(cmd(t.path(), &repo2)
        .arg("import")
        .arg(&aes)
        .env("OPSI_BACKUP_BACKUP_PASSWORD_FILE", &pw));
    let list = snapshots(t.path(), &repo2);
    assert_eq!(list.len(), 1);
    let layers = list[0]["sysinfo"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p[0] == "layers")
        .map(|p| p[1].clone());
    assert_eq!(layers, Some(json!("msgpack.lz4.aes")), "{:#}", list[0]);
    ok(cmd(t.path(), &repo2).arg("verify"));
}

/// A JSON backup as opsiconfd writes one (compact), with config files and redis keys.
/// (serde_json orders the keys; opsiconfd's order does not matter to the split.)
fn json_backup(timestamp: f64, expires: i64, version: &str) -> Vec<u8> {
    let hosts: Vec<Value> = (0..300)
        .map(|i| json!({"id": format!("client{i}.example.org"), "type": "OpsiClient", "description": "x".repeat(i % 50)}))
        .collect();
    let pocs: Vec<Value> = (0..3000)
        // By product, then host, as opsiconfd lists them: one host's states lie spread.
        .map(|i| json!({"productId": format!("product{}", i / 100), "clientId": format!("client{}.example.org", i % 100), "installationStatus": "installed", "actionRequest": "none"}))
        .collect();
    let doc = json!({
        "meta": {"type": "opsiconfd_backup", "version": version, "opsiconfd_version": "4.3.1.0",
                 "timestamp": timestamp, "datetime": "2024-05-01 01:00:00", "node_name": "server",
                 "fqdn": "server.example.org", "host_id": "server.example.org", "server_id": "server.example.org"},
        "objects": {"Host": hosts, "ProductOnClient": pocs},
        "config_files": {"opsi_conf": {"path": "/etc/opsi/opsi.conf", "content": "[host]\nid = \"server.example.org\"\n"}},
        "redis": {"dumped_keys": [
            {"name": "opsiconfd:stats:a", "value": "AAEC", "expires": expires},
            {"name": "opsiconfd:stats:b", "value": "AwQF", "expires": null}
        ]}
    });
    serde_json::to_vec(&doc).unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn json_gz_round_trips_and_python_reads_it() {
    let t = tempfile::tempdir().unwrap();
    let repo = init(t.path());
    let doc = json_backup(1714525200.5, 1714611600000, "1");
    let file = t.path().join("b.json.gz");
    std::fs::write(&file, gzip(&doc)).unwrap();
    ok(cmd(t.path(), &repo).arg("import").arg(&file));
    // The product states, listed by product, are stored grouped by host.
    let members = ok(cmd(t.path(), &repo).args(["list", "latest", "--long"]));
    assert!(members.contains("ProductOnClient.order"), "{members}");
    let out = t.path().join("out.json.gz");
    ok(cmd(t.path(), &repo).args(["export", "latest"]).arg(&out));
    let mut back = Vec::new();
    flate2::read::GzDecoder::new(&std::fs::read(&out).unwrap()[..])
        .read_to_end(&mut back)
        .unwrap();
    assert!(back == doc);
    // opsiconfd's reader, in Python's standard library: gzip, then JSON.
    let py = "import gzip, json, sys\n\
              d = json.loads(gzip.decompress(open(sys.argv[1], 'rb').read()))\n\
              m = d['meta']\n\
              print(m['type'], m['version'], len(d['objects']['Host']), d['redis']['dumped_keys'][0]['expires'])";
    let o = std::process::Command::new("python3")
        .args(["-c", py])
        .arg(&out)
        .output()
        .expect("python3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "opsiconfd_backup 1 300 1714611600000"
    );

    // The next night: new timestamp and redis expiry, one host changed. The streams hold
    // neither time, so it costs about the changed object.
    let mut night = json_backup(1714611600.25, 1714698000000, "1");
    let at = night
        .windows(17)
        .position(|w| w == b"client123.example")
        .unwrap();
    night[at + 6] = b'9';
    let mut night = String::from_utf8(night)
        .unwrap()
        .replacen(
            "\"actionRequest\":\"none\"",
            "\"actionRequest\":\"setup\"",
            1,
        )
        .replacen("[host]", "[HOST]", 1)
        .into_bytes();
    night.push(b'\n');
    let file2 = t.path().join("b2.json.gz");
    std::fs::write(&file2, gzip(&night)).unwrap();
    ok(cmd(t.path(), &repo).arg("import").arg(&file2));
    let list = snapshots(t.path(), &repo);
    let first = list[0]["added"].as_u64().unwrap();
    let second = list[1]["added"].as_u64().unwrap();
    assert!(second * 4 < first, "night added {second} of {first}");
    let out2 = t.path().join("out2.json");
    ok(cmd(t.path(), &repo).args(["export", "latest"]).arg(&out2));
    assert!(std::fs::read(&out2).unwrap() == night);

    // diff in opsi terms: a host renamed, a product state and a config file changed.
    let (a, b) = (
        list[0]["short_id"].as_str().unwrap(),
        list[1]["short_id"].as_str().unwrap(),
    );
    let text = ok(cmd(t.path(), &repo).args(["diff", a, b]));
    assert!(text.contains("-  Host client123.example.org"), "{text}");
    assert!(text.contains("+  Host client923.example.org"), "{text}");
    assert!(
        text.contains("M  ProductOnClient product0;;client0.example.org"),
        "{text}"
    );
    assert!(
        text.contains("M  config file opsi_conf (/etc/opsi/opsi.conf)"),
        "{text}"
    );
    assert!(
        text.contains("hosts: 1 added, 1 removed, 0 changed"),
        "{text}"
    );
    assert!(
        text.contains("product states: 0 added, 0 removed, 1 changed"),
        "{text}"
    );
    let doc: Value =
        serde_json::from_str(&ok(cmd(t.path(), &repo).args(["diff", a, b, "--json"]))).unwrap();
    assert_eq!(doc["schema"], "opsi-backup/diff/1");
    assert_eq!(doc["kind"], "opsiconfd");
    assert_eq!(doc["objects"].as_array().unwrap().len(), 3, "{doc:#}");
    assert_eq!(doc["classes"]["Host"]["added"], 1);
    assert_eq!(doc["config_files"][0]["change"], "changed");
}

#[test]
fn unknown_version_and_foreign_files_store_nothing() {
    let t = tempfile::tempdir().unwrap();
    let repo = init(t.path());
    let before = repo_state(&repo);
    let v2 = t.path().join("v2.json");
    std::fs::write(&v2, json_backup(1.0, 1, "2")).unwrap();
    let not_ours = t.path().join("other.json");
    std::fs::write(
        &not_ours,
        br#"{"meta": {"type": "something_else"}, "objects": {}}"#,
    )
    .unwrap();
    let no_meta = t.path().join("no-meta.json");
    std::fs::write(&no_meta, br#"{"objects": {}}"#).unwrap();
    let cut = t.path().join("cut.msgpack.lz4");
    let full = std::fs::read(fixture()).unwrap();
    std::fs::write(&cut, &full[..full.len() / 2]).unwrap();
    let broken_json = t.path().join("broken.json");
    let mut doc = json_backup(1.0, 1, "1");
    doc.truncate(doc.len() - 3);
    std::fs::write(&broken_json, &doc).unwrap();
    let text = t.path().join("notes.txt");
    std::fs::write(&text, "just some text\n").unwrap();
    // Named like a backup, read neither as one nor as a tar archive ("truncated" would mislead).
    let named = t.path().join("night.msgpack.lz4");
    std::fs::write(&named, "just some text\n").unwrap();
    for (file, says) in [
        (
            &v2,
            "opsiconfd backup format version \"2\" is not supported",
        ),
        (&not_ours, "not an opsiconfd backup"),
        (&no_meta, "not an opsiconfd backup"),
        (&cut, "truncated"),
        (&broken_json, "truncated or damaged"),
        (&text, "notes.txt"),
        (
            &named,
            "named like an opsiconfd backup file but does not start like one",
        ),
    ] {
        let (code, _, err) = run(cmd(t.path(), &repo).arg("import").arg(file));
        assert_ne!(code, 0, "{}", file.display());
        assert!(err.contains(says), "{}: {err}", file.display());
        assert!(
            repo_state(&repo) == before,
            "{}: the repository changed",
            file.display()
        );
    }
}

/// A stand-in for `opsiconfd`: logs its arguments and the mode of the target's directory,
/// then writes the real backup file there (or fails, when told to).
fn stand_in(dir: &Path) -> PathBuf {
    let script = dir.join("opsiconfd");
    let text = format!(
        "#!/bin/sh\n\
         for last; do :; done\n\
         echo \"$@\" > '{log}'\n\
         stat -c %a \"$(dirname \"$last\")\" >> '{log}'\n\
         if [ -n \"$STAND_IN_FAIL\" ]; then echo 'Backup failed: database unreachable' >&2; exit 1; fi\n\
         cp '{fixture}' \"$last\"\n",
        log = dir.join("args.log").display(),
        fixture = fixture().display()
    );
    std::fs::write(&script, text).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
fn create_runs_opsiconfd_backup_into_a_private_spool() {
    let t = tempfile::tempdir().unwrap();
    let repo = init(t.path());
    let script = stand_in(t.path());
    let before = repo_state(&repo);
    let (code, _, err) = run(cmd(t.path(), &repo)
        .args(["create", "--backends", "opsiconfd"])
        .env("OPSI_BACKUP_OPSICONFD", &script)
        .env("STAND_IN_FAIL", "1"));
    assert_ne!(code, 0);
    assert!(err.contains("database unreachable"), "{err}");
    assert!(repo_state(&repo) == before);

    let out = ok(cmd(t.path(), &repo)
        .args(["create", "--backends", "opsiconfd", "--json"])
        .arg("--opsiconfd-arg=--no-maintenance")
        .env("OPSI_BACKUP_OPSICONFD", &script));
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["snapshot"]["kind"], "opsiconfd");
    assert_eq!(doc["snapshot"]["source"], "create opsiconfd");
    let log = std::fs::read_to_string(t.path().join("args.log")).unwrap();
    let mut lines = log.lines();
    let args = lines.next().unwrap();
    assert!(
        args.starts_with("backup --quiet --no-maintenance /"),
        "{args}"
    );
    assert!(args.ends_with(".msgpack.lz4"), "{args}");
    assert_eq!(lines.next(), Some("700"), "the spool is private");
    // The spool is gone afterwards.
    let spool = Path::new(args.rsplit(' ').next().unwrap())
        .parent()
        .unwrap();
    assert!(!spool.exists());
    assert_eq!(snapshots(t.path(), &repo).len(), 1);
}

/// The fuzz target's property on mutated seeds (a quick stand-in for a fuzzing run): any
/// document the split accepts comes back byte for byte, and nothing panics.
#[test]
fn mutated_documents_split_and_join_or_are_refused() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/opsiconfd");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut accepted = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let original = std::fs::read(entry.unwrap().path()).unwrap();
        for _ in 0..3000 {
            let mut data = original.clone();
            for _ in 0..=(next() % 3) {
                let i = (next() as usize) % data.len();
                match next() % 3 {
                    0 => data[i] = next() as u8,
                    1 => {
                        data.remove(i);
                    }
                    _ => data.insert(i, next() as u8),
                }
            }
            if opsi_backup::opsiconfd::split::split(&data).is_ok() {
                accepted += 1;
            }
            opsi_backup::fuzz::opsiconfd(&data);
        }
    }
    assert!(
        accepted > 100,
        "only {accepted} mutants accepted: the seeds do not exercise the join"
    );
}

/// On one server, opsi-backup's and opsiconfd's snapshots are two series: create's parent is
/// the newest opsi-backup snapshot even when an opsiconfd one is newer, and `--keep-last 1`
/// keeps the newest of each.
#[test]
fn the_two_kinds_of_one_server_are_two_series() {
    let server = common::fake_server::FakeServer::new(3, false);
    let root = server.root();
    let t = tempfile::tempdir().unwrap();
    let repo = init(t.path());
    let create = || {
        let out = ok(cmd(root, &repo).args(["create", "--json"]));
        serde_json::from_str::<Value>(&out).unwrap()
    };
    create();
    for (i, stamp) in [4102444800.0, 4102531200.0].into_iter().enumerate() {
        // Newer than any create: 2100-01-01 and the day after.
        let doc = String::from_utf8(json_backup(stamp, 1, "1"))
            .unwrap()
            .replace("\"server.example.org\"", "\"opsiserver.example.org\"");
        let f = t.path().join(format!("o{i}.json"));
        std::fs::write(&f, doc).unwrap();
        ok(cmd(root, &repo).arg("import").arg(&f));
    }
    let list = snapshots(root, &repo);
    assert!(
        list.iter().all(|s| s["host"] == "opsiserver.example.org"),
        "{list:#?}"
    );
    let second = create();
    assert!(
        second["unchanged_files"].as_u64().unwrap() > 0,
        "the parent was not the opsi-backup snapshot: {second:#}"
    );
    ok(cmd(root, &repo).args(["forget", "--keep-last", "1"]));
    let kinds: Vec<String> = snapshots(root, &repo)
        .iter()
        .map(|s| format!("{} {}", s["kind"].as_str().unwrap(), s["time"]))
        .collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert!(
        kinds.contains(&"opsiconfd 4102531200".to_string()),
        "{kinds:?}"
    );
    assert!(
        kinds.iter().any(|k| k.starts_with("opsi-backup")),
        "{kinds:?}"
    );
}

/// Python's `cryptography` (OpenSSL's AES-GCM, not the RustCrypto crates used above), when the
/// machine has it: it decrypts what export wrote, and what it encrypts, import reads. This is
/// the layer as opsiconfd's PyCryptodome code writes it: 16-byte nonce, tag before the nonce,
/// the password's text in Latin-1.
#[test]
fn an_independent_aes_gcm_agrees_both_ways() {
    let has = std::process::Command::new("python3")
        .args(["-c", "import cryptography"])
        .status()
        .is_ok_and(|s| s.success());
    if !has {
        eprintln!("python3 with cryptography not installed: cross-check skipped");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let repo = init(t.path());
    let pw = t.path().join("pw");
    std::fs::write(&pw, "pässwort").unwrap();
    let doc = json_backup(1714525200.5, 1714611600000, "1");
    let plain = t.path().join("b.json.gz");
    std::fs::write(&plain, gzip(&doc)).unwrap();
    let py = r#"
import os, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives import hashes
mode, src, dst, pw = sys.argv[1:5]
pw = open(pw, encoding='utf-8').read()  # opsiconfd's str password, which PyCryptodome
pw = pw.encode('latin-1')                # encodes as Latin-1 before PBKDF2
key = lambda salt: PBKDF2HMAC(hashes.SHA256(), 32, salt, 200000).derive(pw)
data = open(src, 'rb').read()
marker = b'{aes-256-gcm-sha256}'
if mode == 'enc':
    salt, nonce = os.urandom(32), os.urandom(16)
    out = AESGCM(key(salt)).encrypt(nonce, data, None)
    open(dst, 'wb').write(marker + salt + out[-16:] + nonce + out[:-16])
else:
    assert data.startswith(marker)
    p = len(marker)
    salt, tag, nonce = data[p:p+32], data[p+32:p+48], data[p+48:p+64]
    open(dst, 'wb').write(AESGCM(key(salt)).decrypt(nonce, data[p+64:] + tag, None))
"#;
    let python = |mode: &str, src: &Path, dst: &Path| {
        let o = std::process::Command::new("python3")
            .args(["-c", py, mode])
            .arg(src)
            .arg(dst)
            .arg(&pw)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    // Python encrypts, import decrypts.
    let enc = t.path().join("b.json.gz.aes");
    python("enc", &plain, &enc);
    ok(cmd(t.path(), &repo)
        .arg("import")
        .arg(&enc)
        .arg("--backup-password-file")
        .arg(&pw));
    // Export encrypts, Python decrypts.
    let out = t.path().join("out.json.gz.aes");
    ok(cmd(t.path(), &repo)
        .args(["export", "latest"])
        .arg(&out)
        .arg("--backup-password-file")
        .arg(&pw));
    let dec = t.path().join("out.json.gz");
    python("dec", &out, &dec);
    let mut back = Vec::new();
    flate2::read::GzDecoder::new(&std::fs::read(&dec).unwrap()[..])
        .read_to_end(&mut back)
        .unwrap();
    assert!(back == doc);
}
