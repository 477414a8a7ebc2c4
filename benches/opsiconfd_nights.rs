//! Thirty nights of `opsiconfd backup` files generated from the real one in
//! tests/fixtures/opsiconfd (issue 21's figures): each night a few percent of the client hosts
//! get new audit and product data (their objects' `lastseen`/`modificationTime`/`lastSeen`
//! change, one of their product states changes its action result) and new hosts appear (copies
//! of an existing client's objects under a new id, appended as a database appends rows).
//! Every night is imported into one repository; the report gives the repository against the
//! files, each night's bytes added against its file, import and export times and peak memory
//! (`/usr/bin/time -v`).
//!
//! `cargo bench --bench opsiconfd_nights -- [--nights 30] [--change-percent 3]
//! [--new-hosts 2] [--seed 1] [--dir DIR]`

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rmpv::Value;

const FIXTURE: &str = "tests/fixtures/opsiconfd/opsiconfd-backup.msgpack.lz4";

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn get<'a>(map: &'a Value, key: &str) -> Option<&'a Value> {
    map.as_map()?
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

fn get_mut<'a>(map: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    match map {
        Value::Map(m) => m
            .iter_mut()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// The host an object belongs to, if it is a client's.
fn owner(obj: &Value) -> Option<&str> {
    ["clientId", "objectId", "hostId"]
        .iter()
        .find_map(|k| get(obj, k).and_then(Value::as_str))
}

fn date(night: usize) -> String {
    format!("2023-08-{:02} 0{}:12:54", 1 + night % 28, night % 10)
}

/// One night: `change` of the client hosts get new data, `new_hosts` copies of a client appear.
fn night(doc: &mut Value, n: usize, change: f64, new_hosts: usize, rng: &mut Rng) {
    let stamp = 1_690_305_174.0 + 86_400.0 * n as f64;
    let meta = get_mut(doc, "meta").unwrap();
    *get_mut(meta, "timestamp").unwrap() = Value::F64(stamp);
    *get_mut(meta, "datetime").unwrap() = Value::from(date(n));
    let objects = get_mut(doc, "objects").unwrap();
    let clients: Vec<String> = get(objects, "Host")
        .and_then(Value::as_array)
        .unwrap()
        .iter()
        .filter(|h| get(h, "type").and_then(Value::as_str) == Some("OpsiClient"))
        .filter_map(|h| get(h, "id").and_then(Value::as_str).map(str::to_string))
        .collect();
    let count = ((clients.len() as f64 * change).round() as usize).max(1);
    let changed: std::collections::HashSet<String> = (0..count)
        .map(|_| clients[rng.below(clients.len())].clone())
        .collect();
    let Value::Map(classes) = objects else { return };
    for (_, list) in classes.iter_mut() {
        let Value::Array(list) = list else { continue };
        for obj in list.iter_mut() {
            let host = owner(obj)
                .or_else(|| get(obj, "id").and_then(Value::as_str))
                .map(str::to_string);
            if !host.is_some_and(|h| changed.contains(&h)) {
                continue;
            }
            for key in ["lastseen", "lastSeen", "modificationTime"] {
                if let Some(v) = get_mut(obj, key) {
                    if v.is_str() {
                        *v = Value::from(date(n));
                    }
                }
            }
            if let Some(v) = get_mut(obj, "actionResult") {
                if rng.below(4) == 0 {
                    *v = Value::from(if n % 2 == 0 { "successful" } else { "failed" });
                }
            }
        }
    }
    // New hosts: a copy of a random client's objects under a new id.
    for k in 0..new_hosts {
        let model = clients[rng.below(clients.len())].clone();
        let name = format!("new-{n:02}-{k}.mycompany.de");
        for (_, list) in classes.iter_mut() {
            let Value::Array(list) = list else { continue };
            let copies: Vec<Value> = list
                .iter()
                .filter(|o| {
                    owner(o) == Some(model.as_str())
                        || get(o, "id").and_then(Value::as_str) == Some(model.as_str())
                })
                .map(|o| rename(o, &model, &name))
                .collect();
            list.extend(copies);
        }
    }
}

fn rename(v: &Value, from: &str, to: &str) -> Value {
    match v {
        Value::String(s) if s.as_str() == Some(from) => Value::from(to),
        Value::Map(m) => Value::Map(
            m.iter()
                .map(|(k, v)| (k.clone(), rename(v, from, to)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| rename(v, from, to)).collect()),
        v => v.clone(),
    }
}

fn encode(doc: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, doc).unwrap();
    out
}

fn lz4(doc: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let info = lz4_flex::frame::FrameInfo::new()
        .block_size(lz4_flex::frame::BlockSize::Max64KB)
        .block_mode(lz4_flex::frame::BlockMode::Linked)
        .content_size(Some(doc.len() as u64));
    let mut e = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
    e.write_all(doc).unwrap();
    e.finish().unwrap()
}

/// Runs the binary under `/usr/bin/time -v`: (seconds, peak RSS in KiB, stdout).
fn timed(args: &[&std::ffi::OsStr]) -> (f64, u64, String) {
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(env!("CARGO_BIN_EXE_opsi-backup"))
        .args(args)
        .args(["--log-file", "/dev/null", "-q"])
        .output()
        .expect("run opsi-backup under /usr/bin/time");
    let secs = start.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {err}");
    let rss = err
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (secs, rss, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn dir_size(p: &Path) -> u64 {
    fn walk(p: &Path, sum: &mut u64) {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                walk(&e.path(), sum);
            } else {
                *sum += m.len();
            }
        }
    }
    let mut sum = 0;
    walk(p, &mut sum);
    sum
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let nights: usize = arg(&args, "--nights", "30").parse().unwrap();
    let change: f64 = arg(&args, "--change-percent", "3").parse::<f64>().unwrap() / 100.0;
    let new_hosts: usize = arg(&args, "--new-hosts", "2").parse().unwrap();
    let mut rng = Rng(arg(&args, "--seed", "1").parse::<u64>().unwrap() | 1);
    let tmp = tempfile::tempdir().unwrap();
    let dir = args
        .iter()
        .position(|a| a == "--dir")
        .map(|i| PathBuf::from(&args[i + 1]))
        .unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    let file = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE)).unwrap();
    let mut plain = Vec::new();
    lz4_flex::frame::FrameDecoder::new(&file[..])
        .read_to_end(&mut plain)
        .unwrap();
    let mut doc = rmpv::decode::read_value(&mut &plain[..]).unwrap();
    assert!(
        encode(&doc) == plain,
        "re-encoding the real file changes it"
    );
    if args.iter().any(|a| a == "--inspect") {
        for (k, list) in get(&doc, "objects").unwrap().as_map().unwrap() {
            let list = list.as_array().unwrap();
            let owners: Vec<Option<&str>> = list.iter().map(owner).collect();
            let runs = owners.windows(2).filter(|w| w[0] != w[1]).count() + 1;
            let mut distinct = owners.clone();
            distinct.sort();
            distinct.dedup();
            println!(
                "{k}: {} objects, {} owners, {runs} runs",
                list.len(),
                distinct.len()
            );
        }
        return;
    }

    let mut files = Vec::new();
    for n in 0..nights {
        if n > 0 {
            night(&mut doc, n, change, new_hosts, &mut rng);
        }
        let bytes = if n == 0 {
            file.clone()
        } else {
            lz4(&encode(&doc))
        };
        let path = dir.join(format!("opsiconfd-backup-night{n:02}.msgpack.lz4"));
        std::fs::write(&path, &bytes).unwrap();
        files.push(path);
    }

    let repo = dir.join("repo");
    let _ = std::fs::remove_dir_all(&repo);
    let r = repo.as_os_str();
    timed(&["-r".as_ref(), r, "init".as_ref()]);
    println!("| night | file | document | added | import s | import peak RSS |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut total_files = 0u64;
    let mut import_secs = Vec::new();
    for (n, f) in files.iter().enumerate() {
        let (secs, rss, _) = timed(&["-r".as_ref(), r, "import".as_ref(), f.as_os_str()]);
        let (_, _, json) = timed(&["-r".as_ref(), r, "snapshots".as_ref(), "--json".as_ref()]);
        let list: serde_json::Value = serde_json::from_str(&json).unwrap();
        let last = list.as_array().unwrap().last().unwrap().clone();
        let size = std::fs::metadata(f).unwrap().len();
        total_files += size;
        import_secs.push(secs);
        println!(
            "| {n} | {size} | {} | {} | {secs:.2} | {} MiB |",
            last["size"],
            last["added"],
            rss / 1024
        );
    }
    let out = dir.join("exported.msgpack.lz4");
    let _ = std::fs::remove_file(&out);
    let (esecs, erss, _) = timed(&[
        "-r".as_ref(),
        r,
        "export".as_ref(),
        "latest".as_ref(),
        out.as_os_str(),
    ]);
    let out_aes = dir.join("exported.msgpack.lz4.aes");
    let pw = dir.join("pw");
    std::fs::write(&pw, "pw").unwrap();
    let _ = std::fs::remove_file(&out_aes);
    let (asecs, arss, _) = timed(&[
        "-r".as_ref(),
        r,
        "export".as_ref(),
        "latest".as_ref(),
        out_aes.as_os_str(),
        "--backup-password-file".as_ref(),
        pw.as_os_str(),
    ]);
    let (vsecs, _, _) = timed(&["-r".as_ref(), r, "verify".as_ref()]);
    let repo_size = dir_size(&repo);
    println!();
    println!(
        "{nights} nights, {:.1}% of clients changed and {new_hosts} new hosts per night",
        change * 100.0
    );
    println!(
        "files together: {total_files} bytes; repository: {repo_size} bytes ({:.3} of the files)",
        repo_size as f64 / total_files as f64
    );
    println!(
        "import: {:.2} s mean; export .msgpack.lz4 {esecs:.2} s (peak {} MiB), .aes {asecs:.2} s (peak {} MiB); verify {vsecs:.2} s",
        import_secs.iter().sum::<f64>() / import_secs.len() as f64,
        erss / 1024,
        arss / 1024
    );
}
