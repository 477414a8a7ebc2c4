//! Dedup measurement for the chunking parameters (spec: `store-format/README.md`, section
//! "Chunking"). Generates an opsi-like backup (a mysqldump with ~1 MB extended-INSERT lines and
//! file-backend client .ini files), stores it, then stores a "next night" in which 1% of the
//! database rows changed, 0.2% rows were inserted in the middle of tables and 1% of the client
//! files were edited. Prints, per parameter set, what each backup added on disk.
//!
//! Run: `cargo bench --profile dev --bench dedup` (dependencies are optimised in the dev profile;
//! `DEDUP_CLIENTS=4000` gives a ~245 MB dump like the one the issue quotes).

use std::io::Read;
use std::time::Instant;

use opsi_backup::member::{Member, MemberKind, Mtime};
use opsi_backup::sink::MemberSink;
use opsi_backup::store::{ChunkerParams, Repository, SnapshotMeta};

/// xorshift64*: deterministic, fast, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.below(v.len())]
    }
}

const PRODUCTS: &[&str] = &[
    "firefox",
    "thunderbird",
    "7zip",
    "notepadplusplus",
    "vlc",
    "libreoffice",
    "adobereader",
    "javavm",
    "opsi-client-agent",
    "opsi-script",
    "windows10-upgrade",
    "mshotfix",
    "office2019",
    "teams",
    "zoom",
    "putty",
    "winscp",
    "keepass",
    "gimp",
    "inkscape",
    "python3",
    "git",
    "vscode",
    "chrome",
    "edge",
    "acrobat",
    "citrix-workspace",
    "teamviewer",
    "anydesk",
    "veeam-agent",
    "sophos",
    "defender-config",
    "printer-drivers",
    "hp-universal",
    "canon-ufr",
    "sap-gui",
    "oracle-client",
    "dotnet48",
    "vcredist",
    "directx",
    "wsus-offline",
    "opsi-hotfix",
    "swaudit",
    "hwaudit",
    "opsi-winst",
    "dell-bios",
    "lenovo-bios",
];
const STATES: &[&str] = &["installed", "not_installed", "unknown"];
const ACTIONS: &[&str] = &["none", "setup", "uninstall", "update", "once", "always"];
const RESULTS: &[&str] = &["successful", "failed", "none"];
const VENDORS: &[&str] = &[
    "Microsoft Corporation",
    "Mozilla",
    "The Document Foundation",
    "Igor Pavlov",
    "VideoLAN",
    "Oracle",
    "Adobe Systems Incorporated",
    "Google LLC",
];

fn fqdn(i: usize) -> String {
    format!("pc{i:05}.school{}.example.org", i % 17)
}

fn time(rng: &mut Rng) -> String {
    format!(
        "2026-{:02}-{:02} {:02}:{:02}:{:02}",
        1 + rng.below(11),
        1 + rng.below(28),
        rng.below(24),
        rng.below(60),
        rng.below(60)
    )
}

/// One table: its name and its rows (the text between the parentheses), in key order.
struct Table {
    name: &'static str,
    rows: Vec<String>,
}

fn product_on_client(rng: &mut Rng, client: usize, product: &str) -> String {
    format!(
        "'{product}','{}','LocalbootProduct','{}','{}','{}','{}.{}-{}','{}','{}','{}'",
        fqdn(client),
        rng.pick(STATES),
        rng.pick(ACTIONS),
        rng.pick(RESULTS),
        1 + rng.below(9),
        rng.below(20),
        1 + rng.below(5),
        rng.pick(&["installing", "uninstalling", "successful", "actionRequest"]),
        time(rng),
        time(rng),
    )
}

fn software(rng: &mut Rng, client: usize, k: usize) -> String {
    format!(
        "'{}','{{{:08X}-{:04X}-{:04X}-{:04X}-{:012X}}}','{} {}.{}.{}','{}','{}.{}.{}.{}','{}','C:\\\\Program Files\\\\{}','{}',{}",
        fqdn(client),
        rng.next() as u32,
        rng.next() as u16,
        rng.next() as u16,
        rng.next() as u16,
        rng.next() & 0xFFFF_FFFF_FFFF,
        PRODUCTS[k % PRODUCTS.len()],
        rng.below(30),
        rng.below(10),
        rng.below(1000),
        rng.pick(VENDORS),
        rng.below(30),
        rng.below(10),
        rng.below(1000),
        rng.below(9999),
        time(rng),
        PRODUCTS[k % PRODUCTS.len()],
        rng.pick(&["x64", "x86"]),
        rng.below(400_000),
    )
}

fn host(rng: &mut Rng, client: usize) -> String {
    format!(
        "'{}','OpsiClient','Raum {} Platz {}','','{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}','10.{}.{}.{}','{:032x}','{}','{}'",
        fqdn(client),
        rng.below(300),
        rng.below(40),
        rng.below(256), rng.below(256), rng.below(256), rng.below(256), rng.below(256), rng.below(256),
        client / 65536, (client / 256) % 256, client % 256,
        (u128::from(rng.next()) << 64) | u128::from(rng.next()),
        time(rng),
        time(rng),
    )
}

fn database(clients: usize, rng: &mut Rng) -> Vec<Table> {
    let mut hosts = Table {
        name: "HOST",
        rows: Vec::new(),
    };
    let mut poc = Table {
        name: "PRODUCT_ON_CLIENT",
        rows: Vec::new(),
    };
    let mut sw = Table {
        name: "SOFTWARE_CONFIG",
        rows: Vec::new(),
    };
    for c in 0..clients {
        hosts.rows.push(host(rng, c));
        for p in PRODUCTS.iter().take(25 + c % 20) {
            poc.rows.push(product_on_client(rng, c, p));
        }
        for k in 0..150 {
            sw.rows.push(software(rng, c, k));
        }
    }
    vec![hosts, poc, sw]
}

/// Renders tables like mysqldump: a new `INSERT INTO` line whenever the current one passes
/// ~1 MB (net_buffer_length), so an inserted row moves every later line break of its table.
fn dump(tables: &[Table]) -> Vec<u8> {
    let mut out = String::from("-- MySQL dump 10.19  Distrib 10.11.6-MariaDB, for debian-linux-gnu (x86_64)\n--\n-- Host: localhost    Database: opsi\n\n");
    for t in tables {
        out.push_str(&format!(
            "DROP TABLE IF EXISTS `{0}`;\nCREATE TABLE `{0}` (...);\nLOCK TABLES `{0}` WRITE;\n",
            t.name
        ));
        let mut line_len = usize::MAX;
        for r in &t.rows {
            if line_len > 1_000_000 {
                if line_len != usize::MAX {
                    out.push_str(";\n");
                }
                let head = format!("INSERT INTO `{}` VALUES ", t.name);
                line_len = head.len();
                out.push_str(&head);
            } else {
                out.push(',');
            }
            out.push('(');
            out.push_str(r);
            out.push(')');
            line_len += r.len() + 3;
        }
        out.push_str(";\nUNLOCK TABLES;\n");
    }
    out.push_str("-- Dump completed on 2026-11-25  3:00:01\n");
    out.into_bytes()
}

fn client_ini(rng: &mut Rng, c: usize) -> String {
    let mut s = format!("[info]\ndescription = Raum {}\nnotes = \nhardwareaddress = {:012x}\nipaddress = 10.0.{}.{}\ncreated = {}\nlastseen = {}\n\n[localboot_product_states]\n", c % 300, rng.next() & 0xFFFF_FFFF_FFFF, c / 256, c % 256, time(rng), time(rng));
    for p in PRODUCTS.iter().take(25 + c % 20) {
        s.push_str(&format!(
            "{p} = {}:{}\n",
            rng.pick(STATES),
            rng.pick(ACTIONS)
        ));
    }
    for p in PRODUCTS.iter().take(25 + c % 20) {
        s.push_str(&format!("\n[{p}-state]\nproductversion = {}.{}\npackageversion = {}\nlastaction = {}\nactionresult = {}\nmodificationtime = {}\n", rng.below(30), rng.below(10), rng.below(9), rng.pick(ACTIONS), rng.pick(RESULTS), time(rng)));
    }
    s
}

fn file_member(path: String, size: u64) -> Member {
    Member {
        path,
        kind: MemberKind::File,
        mode: 0o660,
        uid: 999,
        gid: 999,
        uname: "opsiconfd".into(),
        gname: "opsifileadmins".into(),
        mtime: Mtime::from_unix(1_764_036_000, 0),
        size,
        raw_header: None,
        stamp: None,
        xattrs: Vec::new(),
    }
}

struct Backup {
    files: Vec<(String, Vec<u8>)>,
}

impl Backup {
    fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.1.len() as u64).sum()
    }
}

/// How the night's database changes are laid out.
#[derive(Clone, Copy, Debug)]
enum Changes {
    /// 1% of rows changed and 0.2% inserted, each at its own random place.
    Spread,
    /// The same 1% of rows changed, in runs of 100 neighbouring rows (one client's audit or
    /// product states), and 0.02% inserted, in runs of 10.
    Clustered,
}

/// The first night and the second night.
fn generate(clients: usize, changes: Changes) -> (Backup, Backup) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut tables = database(clients, &mut rng);
    let mut inis: Vec<String> = (0..clients).map(|c| client_ini(&mut rng, c)).collect();
    let night = |tables: &[Table], inis: &[String]| {
        let mut files: Vec<(String, Vec<u8>)> = inis
            .iter()
            .enumerate()
            .map(|(c, s)| {
                (
                    format!("CONTENT/BACKENDS/FILE/file/clients/{}.ini", fqdn(c)),
                    s.clone().into_bytes(),
                )
            })
            .collect();
        files.push((
            "CONTENT/BACKENDS/MYSQL/mysql/database.sql".into(),
            dump(tables),
        ));
        Backup { files }
    };
    let first = night(&tables, &inis);

    // 1% of rows change in place, 0.2% new rows land in the middle of their tables.
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for t in &mut tables {
        let n = t.rows.len();
        let (run, inserted, insert_run) = match changes {
            Changes::Spread => (1, n.div_ceil(500), 1),
            Changes::Clustered => (100, n.div_ceil(5000), 10),
        };
        for _ in 0..n.div_ceil(100 * run) {
            let start = rng.below(n);
            for i in start..(start + run).min(n) {
                t.rows[i] = random_row(&mut rng, t.name, clients);
            }
        }
        for _ in 0..inserted.div_ceil(insert_run) {
            let at = rng.below(t.rows.len());
            for _ in 0..insert_run {
                let row = random_row(&mut rng, t.name, clients);
                t.rows.insert(at, row);
            }
        }
    }
    // 1% of the client files are edited: one product state line changes.
    for _ in 0..clients.div_ceil(100) {
        let c = rng.below(clients);
        inis[c] = inis[c]
            .replacen(" = installed:none", " = installed:setup", 1)
            .replacen("lastseen = 2026", "lastseen = 2027", 1);
    }
    (first, night(&tables, &inis))
}

/// A fresh random row for `table`.
fn random_row(rng: &mut Rng, table: &str, clients: usize) -> String {
    let c = rng.below(clients);
    match table {
        "HOST" => host(rng, c),
        "PRODUCT_ON_CLIENT" => {
            let p = PRODUCTS[rng.below(PRODUCTS.len())];
            product_on_client(rng, c, p)
        }
        _ => {
            let k = rng.below(150);
            software(rng, c, k)
        }
    }
}

fn store(repo: &Repository, b: &Backup, time: i64) -> (u64, u64) {
    let meta = SnapshotMeta {
        time,
        host: "config.example.org".into(),
        backends: vec!["file".into(), "mysql".into()],
        sysinfo: vec![],
        source: "create".into(),
    };
    let mut w = repo.begin_snapshot(meta).unwrap();
    for (path, data) in &b.files {
        let mut r: &[u8] = data;
        w.add(
            &file_member(path.clone(), data.len() as u64),
            &mut r as &mut dyn Read,
        )
        .unwrap();
    }
    let info = w.commit().unwrap();
    (info.added, info.size)
}

fn dir_size(p: &std::path::Path, name: &str) -> u64 {
    std::fs::read_dir(p)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(name))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

fn main() {
    let clients: usize = std::env::var("DEDUP_CLIENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    for changes in [Changes::Clustered, Changes::Spread] {
        measure(clients, changes);
    }
}

fn measure(clients: usize, changes: Changes) {
    let t0 = Instant::now();
    let (first, second) = generate(clients, changes);
    let dump_len = first.files.last().unwrap().1.len();
    println!(
        "\n{clients} clients, changes {changes:?}: dump {:.1} MB, whole backup {:.1} MB ({} files)\n",
        dump_len as f64 / 1e6,
        first.bytes() as f64 / 1e6,
        first.files.len()
    );
    eprintln!("generated in {:.1?}", t0.elapsed());
    let kib = |k: u32| k * 1024;
    let cdc = |avg: u32, group: u32| ChunkerParams {
        min_size: kib(avg) / 4,
        avg_size: kib(avg),
        max_size: kib(avg) * 8,
        group_size: group,
        ..ChunkerParams::default()
    };
    let mut configs: Vec<(String, ChunkerParams)> = vec![(
        "restic-like: 512K/1M/8M, zstd per chunk".into(),
        ChunkerParams {
            min_size: kib(512),
            avg_size: kib(1024),
            max_size: kib(8192),
            group_size: 0,
            ..ChunkerParams::default()
        },
    )];
    for avg in [2u32, 4, 8, 16, 32] {
        configs.push((
            format!("{}/{avg}K/{}K, groups of 256K", kib(avg) / 4, avg * 8),
            cdc(avg, kib(256)),
        ));
    }
    configs.push(("2048/8K/64K, zstd per chunk".into(), cdc(8, 0)));
    configs.push(("2048/8K/64K, groups of 1M".into(), cdc(8, kib(1024))));
    configs.push(("1024/4K/32K, groups of 1M".into(), cdc(4, kib(1024))));
    println!("| chunking (min/avg/max bytes), compression | first backup stored | next night added (of it snapshot file) | vs restic-like | chunks | index.sqlite |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    let mut restic_added = 0;
    for (name, params) in configs {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        let t = Instant::now();
        let repo = Repository::init_with(&root, params).unwrap();
        let (a1, _) = store(&repo, &first, 1);
        let snap1 = dir_size(&root.join("snapshots"), "");
        let (a2, _) = store(&repo, &second, 2);
        let snap2 = dir_size(&root.join("snapshots"), "") - snap1;
        let chunks = repo.verify(None).unwrap().chunks;
        drop(repo);
        if restic_added == 0 {
            restic_added = a2;
        }
        println!(
            "| {name} | {:.2} MB | {:.2} MB ({:.2} MB) | {:.3} | {chunks} | {:.2} MB |",
            a1 as f64 / 1e6,
            a2 as f64 / 1e6,
            snap2 as f64 / 1e6,
            a2 as f64 / restic_added as f64,
            dir_size(&root, "index.sqlite") as f64 / 1e6,
        );
        eprintln!("  ({name}: {:.1?})", t.elapsed());
    }
}
