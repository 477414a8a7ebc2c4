//! End-to-end benchmark of issue 7: a generated opsi server of N clients (file backend, /etc/opsi,
//! dhcpd.conf and a MySQL database in a dedicated MariaDB database), three nights of backups
//! with opsi-backup and, when installed, restic and borg on the same data; then export to
//! tar.bz2 (against bzip2 -9 and lbzip2 -n 2 on the same tar) and restore. Prints markdown
//! tables of times, bytes, ratios, peak memory and the goals.
//!
//! Run: `cargo bench --bench opsi_bench -- --clients 3000 --seed 1` (see benches/README.md).
//! Options (or environment): --clients N (OPSI_BENCH_CLIENTS, default 1000), --seed S
//! (OPSI_BENCH_SEED, default 1), --dir DIR for the work directory (OPSI_BENCH_DIR, default the
//! system temp dir), --socket PATH of MariaDB (OPSI_BENCH_MYSQL_SOCKET, default
//! /run/mysqld/mysqld.sock; the server's root account must work without password), --no-peers,
//! --no-references (skip bzip2, gzip, lbzip2 and pigz on the tars: for runs on 10x the data,
//! where they alone take half an hour), --keep (keep the work directory and database),
//! --dump-in-tree (OPSI_BENCH_DUMP_IN_TREE; issue 22's second data set: the dump as a file of
//! the file backend, the night's row changes spread over the tables).

#[path = "opsi_bench/db.rs"]
mod db;
#[path = "opsi_bench/gen.rs"]
mod gen;
#[path = "opsi_bench/measure.rs"]
#[allow(dead_code)]
mod measure;
#[path = "../tests/common/mysql_schema.rs"]
#[allow(dead_code, clippy::all)]
mod mysql_schema;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use db::{clients_in, data_size, Db};
use measure::{dir_size, fmt_bytes, fmt_secs, installed, Bench, Run};
use mysql_schema::{write_database, write_nightly_changes, write_reaudit};

struct Opts {
    clients: usize,
    seed: u64,
    dir: Option<PathBuf>,
    socket: String,
    peers: bool,
    references: bool,
    keep: bool,
    /// The second data set of issue 22: the dump as a file in the file backend's tree, and
    /// the night's database changes spread over the tables' rows.
    dump_in_tree: bool,
}

fn opts() -> Opts {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut o = Opts {
        clients: env("OPSI_BENCH_CLIENTS").map_or(1000, |v| v.parse().expect("OPSI_BENCH_CLIENTS")),
        seed: env("OPSI_BENCH_SEED").map_or(1, |v| v.parse().expect("OPSI_BENCH_SEED")),
        dir: env("OPSI_BENCH_DIR").map(PathBuf::from),
        socket: env("OPSI_BENCH_MYSQL_SOCKET").unwrap_or_else(|| "/run/mysqld/mysqld.sock".into()),
        peers: true,
        references: true,
        keep: false,
        dump_in_tree: env("OPSI_BENCH_DUMP_IN_TREE").is_some(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| {
            args.next()
                .unwrap_or_else(|| panic!("{name} needs a value"))
        };
        match a.as_str() {
            "--clients" => o.clients = val("--clients").parse().expect("--clients N"),
            "--seed" => o.seed = val("--seed").parse().expect("--seed S"),
            "--dir" => o.dir = Some(val("--dir").into()),
            "--socket" => o.socket = val("--socket"),
            "--no-peers" => o.peers = false,
            "--no-references" => o.references = false,
            "--keep" => o.keep = true,
            "--dump-in-tree" => o.dump_in_tree = true,
            // `cargo bench` passes --bench; filters make no sense here.
            _ => {}
        }
    }
    o
}

/// One night of each tool: ours, then a mysqldump file and restic, borg on it.
struct Night {
    ours: Run,
    ours_added: u64,
    /// mysqldump alone with create's options into /dev/null: the floor of a create with MySQL.
    floor: Run,
    dump: Option<Run>,
    restic: Option<(Run, u64)>,
    borg: Option<(Run, u64)>,
}

/// The database alone, restored three ways and by the original's `mysql db < dump`.
struct DbLoad {
    parallel: Run,
    inserts: Run,
    serial: Run,
    mysql: Run,
}

fn main() {
    let o = opts();
    let b = Bench::new(o.dir.as_deref(), o.keep);
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_opsi-backup"));
    let restic = o.peers && installed("restic");
    let borg = o.peers && installed("borg");
    let lbzip2 = installed("lbzip2");
    eprintln!(
        "opsi_bench: {} clients, seed {}, work dir {}",
        o.clients,
        o.seed,
        b.work.display()
    );

    // The server: files and database.
    let db = Db::create(&o.socket, o.keep);
    let size = data_size(o.clients, o.seed);
    let tree = gen::Tree {
        root: b.work.join("server"),
        seed: o.seed,
    };
    let t = Instant::now();
    tree.generate(o.clients, &db.mysql_conf())
        .expect("generating the file tree");
    let gen_files = t.elapsed().as_secs_f64();
    let t = Instant::now();
    db.feed(|w| write_database(w, &size));
    let gen_db = t.elapsed().as_secs_f64();
    let (tree_bytes, tree_files) = measure::tree_stats(&tree.peer_paths());
    b.log(&format!(
        "generated {} in {} files ({}), database loaded ({})",
        fmt_bytes(tree_bytes),
        tree_files,
        fmt_secs(gen_files),
        fmt_secs(gen_db)
    ));

    let repo = b.work.join("repo");
    let restic_repo = b.work.join("restic-repo");
    let borg_repo = b.work.join("borg-repo");
    let dump_file = b.work.join("mysqldump/opsi.sql");
    std::fs::create_dir_all(dump_file.parent().unwrap()).unwrap();
    // With --dump-in-tree the dump is a file of the file backend, made before each create,
    // and create backs up the files only (the dump is among them).
    let in_tree_dump = tree.config_dir().join("opsi.sql");
    let create_args: &[&str] = if o.dump_in_tree {
        &["create", "--backends", "file", "--backends", "dhcp"]
    } else {
        &["create"]
    };
    let ours = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.arg("--root")
            .arg(&tree.root)
            .arg("--repository")
            .arg(&repo)
            .arg("--log-file")
            .arg(b.work.join("opsi-backup.log"))
            .args(args);
        c
    };
    let restic_cmd = |args: &[&str]| {
        let mut c = Command::new("restic");
        c.arg("--repo")
            .arg(&restic_repo)
            .arg("--quiet")
            .env("RESTIC_PASSWORD", "bench")
            .env("RESTIC_CACHE_DIR", b.work.join("restic-cache"))
            .args(args);
        c
    };
    let borg_cmd = |args: &[&str]| {
        let mut c = Command::new("borg");
        c.args(args)
            .env("BORG_BASE_DIR", b.work.join("borg-base"))
            .env("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes")
            .env("BORG_RELOCATED_REPO_ACCESS_IS_OK", "yes");
        c
    };
    b.run("init", &mut ours(&["init"]));
    if restic {
        b.run("restic init", &mut restic_cmd(&["init"]));
    }
    if borg {
        b.run(
            "borg init",
            borg_cmd(&["init", "--encryption=none"]).arg(&borg_repo),
        );
    }
    let mut peer_paths = tree.peer_paths();
    if !o.dump_in_tree {
        peer_paths.push(dump_file.clone());
    }

    let night = |label: &str, n: usize| -> Night {
        let in_tree = o.dump_in_tree.then(|| {
            let (mut c, dest) = db.dump_cmd(&in_tree_dump);
            b.run_to(&format!("mysqldump into the tree ({label})"), &mut c, &dest)
        });
        let before = dir_size(&repo);
        let run = b.run(&format!("create ({label})"), &mut ours(create_args));
        let ours_added = dir_size(&repo) - before;
        let (mut c, _) = db.dump_cmd(Path::new("/dev/null"));
        let floor = b.run_to(
            &format!("mysqldump to /dev/null ({label})"),
            &mut c,
            Path::new("/dev/null"),
        );
        let mut night = Night {
            ours: run,
            ours_added,
            floor,
            dump: in_tree,
            restic: None,
            borg: None,
        };
        if (restic || borg) && !o.dump_in_tree {
            let (mut c, dest) = db.dump_cmd(&dump_file);
            night.dump = Some(b.run_to(&format!("mysqldump ({label})"), &mut c, &dest));
        }
        if restic {
            let before = dir_size(&restic_repo);
            let r = b.run(
                &format!("restic backup ({label})"),
                restic_cmd(&["backup"]).args(&peer_paths),
            );
            night.restic = Some((r, dir_size(&restic_repo) - before));
        }
        if borg {
            let before = dir_size(&borg_repo);
            let r = b.run(
                &format!("borg create ({label})"),
                borg_cmd(&["create", "--compression", "zstd,3"])
                    .arg(format!("{}::night{n}", borg_repo.display()))
                    .args(&peer_paths),
            );
            night.borg = Some((r, dir_size(&borg_repo) - before));
        }
        night
    };

    let first = night("first", 0);
    let first_stored = dir_size(&repo);

    // A night: 1% of the clients check in, a few new clients appear mid-table.
    let t = Instant::now();
    let mut reaudit = Vec::new();
    write_reaudit(&mut reaudit, &size, 1.0, o.seed + 100).unwrap();
    let new_clients = (o.clients / 500).max(2);
    let mut nightly = Vec::new();
    // --dump-in-tree: besides those clients, 1% of the rows of every client table (software
    // and hardware audit, product states, hosts) change, spread by primary key.
    let scattered = if o.dump_in_tree { 1.0 } else { 0.0 };
    write_nightly_changes(&mut nightly, &size, scattered, new_clients, o.seed + 200).unwrap();
    let changed = clients_in(&reaudit);
    let added = clients_in(&nightly);
    db.feed(|w| {
        w.write_all(&reaudit)?;
        w.write_all(&nightly)
    });
    for id in changed.iter() {
        tree.write_client(id, 1).unwrap();
    }
    for id in added.iter() {
        tree.write_client(id, 1).unwrap();
    }
    b.log(&format!(
        "night: {} clients checked in, {} new ({})",
        changed.len(),
        added.len(),
        fmt_secs(t.elapsed().as_secs_f64())
    ));
    let one = night("1% night", 1);
    let unchanged = night("unchanged night", 2);

    // Export. Cold: the first night (the export cache is empty; this fills it) against bzip2 -9
    // and gzip -9 on the same tar. Warm: the 1% night, whose predecessor was just exported,
    // against lbzip2 / pigz on 2 threads on its tar.
    let ids: Vec<String> = {
        let out = ours(&["snapshots", "--json"]).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (first_id, one_id) = (ids[0].as_str(), ids[1].as_str());
    let file = |name: &str| b.work.join(name);
    let export_tar = b.run(
        "export (none)",
        ours(&["export", first_id, "-c", "none"]).arg(file("first.tar")),
    );
    ours(&["export", one_id, "-c", "none"])
        .arg(file("night.tar"))
        .status()
        .unwrap();
    let tar_size = std::fs::metadata(file("first.tar")).map_or(0, |m| m.len());
    let mut exports = Vec::new();
    for codec in ["bz2", "gz"] {
        let cold = b.run(
            &format!("export ({codec}, cold)"),
            ours(&["export", first_id, "-c", codec]).arg(file(&format!("first.tar.{codec}"))),
        );
        let warm = b.run(
            &format!("export ({codec}, previous night exported)"),
            ours(&["export", one_id, "-c", codec]).arg(file(&format!("night.tar.{codec}"))),
        );
        let size = |n: &str| std::fs::metadata(file(n)).map_or(0, |m| m.len());
        let log = std::fs::read_to_string(b.work.join("opsi-backup.log")).unwrap_or_default();
        exports.push(Export {
            warm_reuse: last_reuse(&log),
            codec,
            cold_size: size(&format!("first.tar.{codec}")),
            warm_size: size(&format!("night.tar.{codec}")),
            cold,
            warm,
        });
    }
    let tool = |label: &str, prog: &str, args: &[&str], tar: &str| {
        (o.references && installed(prog)).then(|| {
            b.run_to(
                label,
                Command::new(prog).args(args).arg(file(tar)),
                &file("peer.out"),
            )
        })
    };
    let bzip2 = tool("bzip2 -9", "bzip2", &["-9", "-c"], "first.tar");
    let bzip2_size = bzip2
        .as_ref()
        .and_then(|_| std::fs::metadata(file("peer.out")).ok())
        .map(|m| m.len());
    let gzip = tool("gzip -9", "gzip", &["-9", "-c"], "first.tar");
    let lbz = lbzip2
        .then(|| {
            tool(
                "lbzip2 -9 -n 2",
                "lbzip2",
                &["-9", "-n", "2", "-c"],
                "night.tar",
            )
        })
        .flatten();
    let pigz = tool(
        "pigz -9 -p 2",
        "pigz",
        &["-9", "-p", "2", "-c"],
        "night.tar",
    );
    for f in ["first.tar", "night.tar", "peer.out"] {
        let _ = std::fs::remove_file(file(f));
    }
    for codec in ["bz2", "gz"] {
        let _ = std::fs::remove_file(file(&format!("first.tar.{codec}")));
        let _ = std::fs::remove_file(file(&format!("night.tar.{codec}")));
    }

    // Restore into empty roots: everything (reloads the database), and without MySQL.
    for root in ["restore-all", "restore-files"] {
        std::fs::create_dir_all(b.work.join(root)).expect("creating a restore root");
    }
    let restore_all = b.run(
        "restore (all, incl. MySQL reload)",
        Command::new(&bin)
            .arg("--root")
            .arg(b.work.join("restore-all"))
            .arg("--repository")
            .arg(&repo)
            .arg("--log-file")
            .arg(b.work.join("opsi-backup.log"))
            .args(["restore", "latest", "--configuration", "--force"]),
    );
    let restore_files = b.run(
        "restore (conf + file + dhcp)",
        Command::new(&bin)
            .arg("--root")
            .arg(b.work.join("restore-files"))
            .arg("--repository")
            .arg(&repo)
            .arg("--log-file")
            .arg(b.work.join("opsi-backup.log"))
            .args([
                "restore",
                "latest",
                "--configuration",
                "--force",
                "--backends",
                "file",
                "--backends",
                "dhcp",
            ]),
    );
    let _ = std::fs::remove_dir_all(b.work.join("restore-all"));
    let _ = std::fs::remove_dir_all(b.work.join("restore-files"));
    // The database alone (issue 22): our restore of the MySQL backend (the server's own
    // configuration names the bench database), and the original's way, `mysql db < dump`, of
    // the same dump into the same database, after the same DROP/CREATE DATABASE.
    // (With --dump-in-tree the snapshots hold no MySQL backend: nothing to load.)
    let db_load = (!o.dump_in_tree).then(|| {
        let ours_load = |label: &str, env: Option<(&str, &str)>| {
            let mut c = ours(&["restore", "latest", "--backends", "mysql", "--force"]);
            if let Some((k, v)) = env {
                c.env(k, v);
            }
            b.run(label, &mut c)
        };
        let parallel = ours_load("restore --backends mysql (parallel load)", None);
        let inserts = ours_load(
            "restore --backends mysql (OPSI_BACKUP_RESTORE_LOAD_DATA=0)",
            Some(("OPSI_BACKUP_RESTORE_LOAD_DATA", "0")),
        );
        let serial = ours_load(
            "restore --backends mysql (OPSI_BACKUP_RESTORE_CONNECTIONS=1)",
            Some(("OPSI_BACKUP_RESTORE_CONNECTIONS", "1")),
        );
        if !dump_file.exists() {
            // Without peers no night wrote it: the same dump, of the unchanged database.
            let (mut c, dest) = db.dump_cmd(&dump_file);
            b.run_to("mysqldump (for mysql db < dump)", &mut c, &dest);
        }
        let mysql = b.run("mysql db < dump", &mut db.serial_load_cmd(&dump_file));
        DbLoad {
            parallel,
            inserts,
            serial,
            mysql,
        }
    });
    let restic_restore = restic.then(|| {
        let target = b.work.join("restic-restore");
        let r = b.run(
            "restic restore",
            restic_cmd(&["restore", "latest", "--target"]).arg(&target),
        );
        let _ = std::fs::remove_dir_all(&target);
        r
    });
    let borg_restore = borg.then(|| {
        let target = b.work.join("borg-restore");
        std::fs::create_dir_all(&target).unwrap();
        let r = b.run(
            "borg extract",
            borg_cmd(&["extract"])
                .arg(format!("{}::night2", borg_repo.display()))
                .current_dir(&target),
        );
        let _ = std::fs::remove_dir_all(&target);
        r
    });
    // Reading every chunk of the repository back, and the difference of two nights.
    let verify = b.run("verify (whole repository)", &mut ours(&["verify"]));
    let restic_check = restic.then(|| {
        b.run(
            "restic check --read-data",
            &mut restic_cmd(&["check", "--read-data"]),
        )
    });
    // What verify reads back: the repository without its export cache (an optimisation only).
    let repo_bytes = dir_size(&repo) - dir_size(&repo.join("cache"));
    let restic_bytes = dir_size(&restic_repo);
    let diff = b.run(
        "diff (first, 1% night)",
        &mut ours(&["diff", first_id, one_id]),
    );
    // After export and restore, which use the latest snapshot: the unchanged night's.
    let file_only = b.run(
        "create --backends file (unchanged)",
        &mut ours(&["create", "--backends", "file"]),
    );
    // Both first creates of the files alone read them from the page cache: by now the
    // cache has lost them (a cold read took ours from 0.6 s to 1.5 s), and restic, run
    // second, would find them cached by ours.
    measure::warm_cache(&tree.peer_paths());
    let file_first = ours_file_only_reference(&b, &bin, &tree.root);
    // restic on the same files alone, into a repository of its own: the file part's peer.
    let restic_files = restic.then(|| {
        let dir = b.work.join("restic-files");
        let cmd = |args: &[&str]| {
            let mut c = Command::new("restic");
            c.arg("--repo")
                .arg(&dir)
                .arg("--quiet")
                .env("RESTIC_PASSWORD", "bench")
                .env("RESTIC_CACHE_DIR", b.work.join("restic-cache"))
                .args(args);
            c
        };
        b.run("restic init (files only)", &mut cmd(&["init"]));
        measure::warm_cache(&tree.peer_paths());
        let r = b.run(
            "restic backup (files only, first)",
            cmd(&["backup"]).args(tree.peer_paths()),
        );
        let _ = std::fs::remove_dir_all(&dir);
        r
    });
    let snapshots = b.run("snapshots --json", &mut ours(&["snapshots", "--json"]));
    let dump_size = std::fs::metadata(&dump_file).map(|m| m.len()).unwrap_or(0);

    // Report.
    let mut out = String::new();
    let w = &mut out;
    use std::fmt::Write as _;
    let _ = writeln!(
        w,
        "### opsi_bench: {} clients, seed {}\n\nServer: {} in {} files (/etc/opsi, file backend, dhcpd.conf) + a {} mysqldump; {} clients checked in on the 1% night, {} new. Generated in {} (files) + {} (database load). {} cores.\n",
        o.clients,
        o.seed,
        fmt_bytes(tree_bytes),
        tree_files,
        fmt_bytes(dump_size),
        changed.len(),
        added.len(),
        fmt_secs(gen_files),
        fmt_secs(gen_db),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let peer_time = |n: &Night, p: &Option<(Run, u64)>| {
        p.as_ref()
            .map(|(r, _)| r.secs + n.dump.as_ref().map_or(0.0, |d| d.secs))
    };
    let peer_bytes = |p: &Option<(Run, u64)>| p.as_ref().map(|(_, b)| *b as f64);
    // (figure, ours, restic, borg, is a time)
    type Row = (String, f64, Option<f64>, Option<f64>, bool);
    let mut rows: Vec<Row> = Vec::new();
    for (name, n) in [
        ("first backup", &first),
        ("1% night", &one),
        ("unchanged night", &unchanged),
    ] {
        rows.push((
            format!("{name}: time"),
            n.ours.secs,
            peer_time(n, &n.restic),
            peer_time(n, &n.borg),
            true,
        ));
        let what = if name == "first backup" {
            "bytes stored"
        } else {
            "bytes added"
        };
        rows.push((
            format!("{name}: {what}"),
            n.ours_added as f64,
            peer_bytes(&n.restic),
            peer_bytes(&n.borg),
            false,
        ));
    }
    rows.push((
        "restore: time (ours reloads MySQL; peers only extract)".into(),
        restore_all.secs,
        restic_restore.as_ref().map(|r| r.secs),
        borg_restore.as_ref().map(|r| r.secs),
        true,
    ));
    rows.push((
        "restore without MySQL: time".into(),
        restore_files.secs,
        restic_restore.as_ref().map(|r| r.secs),
        borg_restore.as_ref().map(|r| r.secs),
        true,
    ));
    if let Some(d) = &db_load {
        let _ = writeln!(
            w,
            "| restore of the database ({} dump) | time | ÷ `mysql db < dump` |\n|---|---:|---:|\n\
             | `mysql db < dump` (the original's load) | {} | 1 |\n\
             | opsi-backup restore --backends mysql, {} connections | {} | {:.3} (speed-up {:.2}×) |\n\
             | the same, rows as INSERTs (OPSI_BACKUP_RESTORE_LOAD_DATA=0) | {} | {:.3} |\n\
             | the same with OPSI_BACKUP_RESTORE_CONNECTIONS=1 (serial) | {} | {:.3} |\n\
             \nGoal (issue 22): restore of the database ≥ 1.6× faster than `mysql db < dump`: {}.\n",
            fmt_bytes(dump_size),
            fmt_secs(d.mysql.secs),
            opsi_backup::mysql::connections(),
            fmt_secs(d.parallel.secs),
            d.parallel.secs / d.mysql.secs,
            d.mysql.secs / d.parallel.secs,
            fmt_secs(d.inserts.secs),
            d.inserts.secs / d.mysql.secs,
            fmt_secs(d.serial.secs),
            d.serial.secs / d.mysql.secs,
            if d.mysql.secs / d.parallel.secs >= 1.6 {
                "met"
            } else {
                "NOT met"
            }
        );
    }
    let _ = writeln!(
        w,
        "| figure | opsi-backup | restic | ours ÷ restic | borg | ours ÷ borg |\n|---|---:|---:|---:|---:|---:|"
    );
    let cell = |v: Option<f64>, time: bool, present: bool| match (v, present) {
        (_, false) => "not installed".to_string(),
        (Some(v), _) if time => fmt_secs(v),
        (Some(v), _) => fmt_bytes(v as u64),
        (None, _) => "-".into(),
    };
    let ratio = |ours: f64, peer: Option<f64>| match peer {
        Some(p) if p > 0.0 => format!("{:.3}", ours / p),
        _ => "-".into(),
    };
    for (name, ours_v, r, bo, time) in &rows {
        let _ = writeln!(
            w,
            "| {name} | {} | {} | {} | {} | {} |",
            cell(Some(*ours_v), *time, true),
            cell(*r, *time, restic),
            ratio(*ours_v, *r),
            cell(*bo, *time, borg),
            ratio(*ours_v, *bo),
        );
    }
    if let Some(d) = &first.dump {
        let _ = writeln!(
            w,
            "\nPeer times include writing the mysqldump file they back up ({} on the first night, {} and {} on the others). restic {} (default compression), borg {} with `--encryption=none --compression zstd,3`.\n",
            fmt_secs(d.secs),
            fmt_secs(one.dump.as_ref().map_or(0.0, |d| d.secs)),
            fmt_secs(unchanged.dump.as_ref().map_or(0.0, |d| d.secs)),
            measure::version("restic", &["version"]),
            measure::version("borg", &["--version"]),
        );
    }
    let (bz, gz) = (&exports[0], &exports[1]);
    let peer_row = |name: &str, peer: &Option<Run>, ours: &Run| match peer {
        Some(r) => format!(
            "| {name} | {} | | {} |\n",
            fmt_secs(r.secs),
            ratio(ours.secs, Some(r.secs))
        ),
        None => format!("| {name} | not run (not installed, or --no-references) | | |\n"),
    };
    let mut t = String::from("| export | time | output | ours ÷ it |\n|---|---:|---:|---:|\n");
    for (e, single, double) in [
        (
            bz,
            ("bzip2 -9 (1 thread)", &bzip2),
            ("lbzip2 -9 -n 2", &lbz),
        ),
        (gz, ("gzip -9 (1 thread)", &gzip), ("pigz -9 -p 2", &pigz)),
    ] {
        let _ = write!(
            t,
            "| opsi-backup export {c}, first night (empty export cache) | {} | {} | - |\n{}| opsi-backup export {c}, 1% night (first night exported before; {}) | {} | {} | - |\n{}",
            fmt_secs(e.cold.secs),
            fmt_bytes(e.cold_size),
            peer_row(&format!("{} on the first night's tar", single.0), single.1, &e.cold),
            e.warm_reuse,
            fmt_secs(e.warm.secs),
            fmt_bytes(e.warm_size),
            peer_row(&format!("{} on the 1% night's tar", double.0), double.1, &e.warm),
            c = e.codec,
        );
    }
    if let Some(z) = bzip2_size {
        let _ = writeln!(
            t,
            "| bzip2 -9's output on the first night's tar | | {} | {:.4} (size) |",
            fmt_bytes(z),
            bz.cold_size as f64 / z as f64
        );
    }
    let _ = writeln!(
        w,
        "{t}| opsi-backup export -c none (the first night's {} tar) | {} | | |\n",
        fmt_bytes(tar_size),
        fmt_secs(export_tar.secs),
    );
    let _ = writeln!(
        w,
        "| opsi-backup command | wall | CPU (user+sys) | peak RSS | others' CPU meanwhile | stolen by the host |\n|---|---:|---:|---:|---:|---:|"
    );
    let mut ours_runs: Vec<(&str, &Run)> = vec![
        ("create (first)", &first.ours),
        ("create (1% night)", &one.ours),
        ("create (unchanged night)", &unchanged.ours),
        ("create --backends file (unchanged)", &file_only),
        (
            "create --backends file (first, separate repository)",
            &file_first,
        ),
        ("export first night (bz2, empty cache)", &bz.cold),
        ("export 1% night (bz2, after the first)", &bz.warm),
        ("export first night (gz, empty cache)", &gz.cold),
        ("export 1% night (gz, after the first)", &gz.warm),
        ("export -c none", &export_tar),
        ("restore latest --configuration --force (all)", &restore_all),
        ("restore (conf + file + dhcp)", &restore_files),
        ("verify (whole repository)", &verify),
        ("mysqldump to /dev/null (first night)", &first.floor),
        ("mysqldump to /dev/null (1% night)", &one.floor),
        ("mysqldump to /dev/null (unchanged night)", &unchanged.floor),
        ("diff (first night, 1% night)", &diff),
        ("snapshots --json", &snapshots),
    ];
    if let Some(d) = &db_load {
        let at = ours_runs
            .iter()
            .position(|(name, _)| *name == "verify (whole repository)")
            .unwrap_or(ours_runs.len());
        ours_runs.splice(
            at..at,
            [
                ("restore --backends mysql (parallel load)", &d.parallel),
                ("restore --backends mysql (rows as INSERTs)", &d.inserts),
                ("restore --backends mysql (serial load)", &d.serial),
            ],
        );
    }
    let mut peak = 0;
    for (name, r) in &ours_runs {
        peak = peak.max(r.max_rss_kib);
        let _ = writeln!(
            w,
            "| {name} | {} | {} | {:.1} MiB | {} | {} |",
            fmt_secs(r.secs),
            fmt_secs(r.cpu()),
            r.max_rss_kib as f64 / 1024.0,
            fmt_secs(r.others),
            fmt_secs(r.stolen)
        );
    }
    let goal = |ok: Option<bool>| match ok {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "n/a (peer not installed)",
    };
    let restic_added = one.restic.as_ref().map(|(_, b)| *b as f64);
    let restic_first = first.restic.as_ref().map(|(_, b)| *b as f64);
    let restic_first_t = peer_time(&first, &first.restic);
    let _ = writeln!(
        w,
        "\n| goal | measured | target | |\n|---|---:|---:|---|\n| 1% night adds ≤ 1/5 of restic | {} | ≤ 0.200 | {} |\n| first backup stores ≤ restic | {} | ≤ 1.000 | {} |\n| first create ≥ 2x faster than restic | {} | ≤ 0.500 | {} |\n| unchanged file backend re-created ≥ 10x faster than the first (full) create | {:.1}x | ≥ 10x | {} |\n| … than the first create of the file backend alone | {:.1}x | ≥ 10x | {} |\n| export bz2 ≥ 1.8x faster than bzip2 -9 | {} | ≥ 1.8x | {} |\n| export bz2 of a night after its predecessor ≥ 2x faster than lbzip2 -n 2 | {} | ≥ 2x | {} |\n| export gz of a night after its predecessor ≥ 2x faster than pigz -p 2 | {} | ≥ 2x | {} |\n| peak memory ≤ 256 MiB | {:.1} MiB | ≤ 256 MiB | {} |",
        ratio(one.ours_added as f64, restic_added),
        goal(restic_added.map(|r| one.ours_added as f64 <= r / 5.0)),
        ratio(first_stored as f64, restic_first),
        goal(restic_first.map(|r| first_stored as f64 <= r)),
        ratio(first.ours.secs, restic_first_t),
        goal(restic_first_t.map(|r| first.ours.secs * 2.0 <= r)),
        first.ours.secs / file_only.secs,
        goal(Some(first.ours.secs >= 10.0 * file_only.secs)),
        file_first.secs / file_only.secs,
        goal(Some(file_first.secs >= 10.0 * file_only.secs)),
        speedup(&bzip2, &bz.cold),
        goal(bzip2.as_ref().map(|r| r.secs >= 1.8 * bz.cold.secs)),
        speedup(&lbz, &bz.warm),
        goal(lbz.as_ref().map(|r| r.secs >= 2.0 * bz.warm.secs)),
        speedup(&pigz, &gz.warm),
        goal(pigz.as_ref().map(|r| r.secs >= 2.0 * gz.warm.secs)),
        peak as f64 / 1024.0,
        goal(Some(peak <= 256 * 1024)),
    );
    // Issue 22's goals: the dump is the floor; the file part and verify against restic.
    let per_byte = |r: &Run, bytes: u64| r.secs / bytes.max(1) as f64;
    let verify_ratio = restic_check
        .as_ref()
        .map(|c| per_byte(&verify, repo_bytes) / per_byte(c, restic_bytes));
    let files_ratio = restic_files.as_ref().map(|r| file_first.secs / r.secs);
    let _ = writeln!(
        w,
        "\n| goal (the dump as the floor) | measured | target | |\n|---|---:|---:|---|"
    );
    // With --dump-in-tree, create backs up files only: the dump is no floor of it.
    let floors = if o.dump_in_tree {
        vec![]
    } else {
        vec![
            ("first create ÷ mysqldump alone", &first, 1.2),
            ("1% night's create ÷ mysqldump alone", &one, 1.15),
            (
                "unchanged night's create ÷ mysqldump alone",
                &unchanged,
                1.1,
            ),
        ]
    };
    for (name, n, limit) in floors {
        let r = n.ours.secs / n.floor.secs;
        let _ = writeln!(
            w,
            "| {name} ({} ÷ {}) | {r:.2} | ≤ {limit} | {} |",
            fmt_secs(n.ours.secs),
            fmt_secs(n.floor.secs),
            goal(Some(r <= limit))
        );
    }
    let _ = writeln!(
        w,
        "| first `create --backends file` ÷ restic backup of the same files | {} | ≤ 0.500 | {} |\n| verify ÷ restic check --read-data, per byte stored ({} of {}, {} of {}) | {} | ≤ 0.500 | {} |",
        files_ratio.map_or("-".into(), |r| format!("{r:.3}")),
        goal(files_ratio.map(|r| r <= 0.5)),
        fmt_secs(verify.secs),
        fmt_bytes(repo_bytes),
        restic_check.as_ref().map_or("-".into(), |c| fmt_secs(c.secs)),
        fmt_bytes(restic_bytes),
        verify_ratio.map_or("-".into(), |r| format!("{r:.3}")),
        goal(verify_ratio.map(|r| r <= 0.5)),
    );
    let _ = writeln!(
        w,
        "\nThe 10x goal compares `create --backends file` on the unchanged server with the first full create (file backend, configuration, dhcp and the MySQL dump); the unchanged night's full create (which always re-dumps MySQL) is {:.1}x faster than the first.",
        first.ours.secs / unchanged.ours.secs
    );
    println!("{out}");
    let report = b.work.join("report.md");
    std::fs::write(&report, &out).unwrap();
    b.log(&format!("done; report also in {}", report.display()));
    drop(db);
}

/// One codec's exports: the first night with an empty export cache, then the 1% night.
struct Export {
    codec: &'static str,
    /// "N of M segments reused" of the warm export, from the log.
    warm_reuse: String,
    cold: Run,
    warm: Run,
    cold_size: u64,
    warm_size: u64,
}

/// "N of M segments reused (P%)" from the log's last export line.
fn last_reuse(log: &str) -> String {
    log.lines()
        .rev()
        .find_map(|l| {
            let (_, tail) = l.split_once(" (")?;
            let (n, tail) = tail.split_once(" of ")?;
            let (m, _) = tail.split_once(" compressed segments reused")?;
            let (n, m): (f64, f64) = (n.parse().ok()?, m.parse().ok()?);
            Some(format!(
                "{n} of {m} segments reused ({:.0}%)",
                100.0 * n / m.max(1.0)
            ))
        })
        .unwrap_or_else(|| "reuse not logged".into())
}

/// "N.NNx" faster than the peer, or "-" when it is not installed.
fn speedup(peer: &Option<Run>, ours: &Run) -> String {
    peer.as_ref()
        .map_or("-".into(), |r| format!("{:.2}x", r.secs / ours.secs))
}

/// The first create of the file backend alone (into its own repository), the reference for
/// the unchanged file-backend re-create.
fn ours_file_only_reference(b: &Bench, bin: &Path, root: &Path) -> Run {
    let repo = b.work.join("repo-file-only");
    let cmd = |args: &[&str]| {
        let mut c = Command::new(bin);
        c.arg("--root")
            .arg(root)
            .arg("--repository")
            .arg(&repo)
            .arg("--log-file")
            .arg(b.work.join("opsi-backup.log"))
            .args(args);
        c
    };
    b.run("init (file only)", &mut cmd(&["init"]));
    let r = b.run(
        "create --backends file (first, separate repository)",
        &mut cmd(&["create", "--backends", "file"]),
    );
    let _ = std::fs::remove_dir_all(&repo);
    r
}
