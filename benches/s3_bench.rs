//! A repository on S3-compatible object storage against restic on the same server, in one run:
//! a generated opsi server of N clients (file backend, /etc/opsi, dhcpd.conf, a MySQL database),
//! three nights (first, 1% of the clients changed, unchanged), each backed up by opsi-backup
//! into an S3 repository and by restic (the same files plus a mysqldump file) into an S3
//! repository of its own; then export and restore from S3, and `copy` of a night from a local
//! repository into S3. Each tool talks to the server through a counting proxy of its own, which
//! gives its requests and bytes up and down.
//!
//! Run in a shell prepared by `eval "$(sh .ci/s3-setup.sh)"` (the S3 server and its key):
//! `cargo bench --bench s3_bench -- --clients 3000`. Options: --clients N (default 1000),
//! --seed S, --dir DIR for the work directory, --socket PATH of MariaDB (default
//! /run/mysqld/mysqld.sock), --no-peers, --keep.

#[path = "opsi_bench/count_proxy.rs"]
mod count_proxy;
#[path = "opsi_bench/db.rs"]
#[allow(dead_code)]
mod db;
#[path = "opsi_bench/gen.rs"]
#[allow(dead_code)]
mod gen;
#[path = "opsi_bench/measure.rs"]
#[allow(dead_code)]
mod measure;
#[path = "../tests/common/mysql_schema.rs"]
#[allow(dead_code, clippy::all)]
mod mysql_schema;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use count_proxy::{Counts, Traffic};
use db::{clients_in, data_size, Db};
use measure::{dir_size, fmt_bytes, fmt_secs, installed, Bench, Run};
use mysql_schema::{write_database, write_nightly_changes, write_reaudit};

struct Opts {
    clients: usize,
    seed: u64,
    dir: Option<PathBuf>,
    socket: String,
    peers: bool,
    keep: bool,
}

fn opts() -> Opts {
    let value = measure::arg;
    Opts {
        clients: value("--clients").map_or(1000, |v| v.parse().expect("--clients")),
        seed: value("--seed").map_or(1, |v| v.parse().expect("--seed")),
        dir: value("--dir").map(PathBuf::from),
        socket: value("--socket").unwrap_or_else(|| "/run/mysqld/mysqld.sock".into()),
        peers: !measure::flag("--no-peers"),
        keep: measure::flag("--keep"),
    }
}

/// `s3:http://host:port/bucket/prefix` of the environment, cut into its upstream (host:port),
/// and the bucket and prefix.
fn s3_target() -> (String, String) {
    let a = std::env::var("OPSI_BACKUP_TEST_S3")
        .expect("OPSI_BACKUP_TEST_S3 is not set: run `eval \"$(sh .ci/s3-setup.sh)\"` first");
    let rest = a
        .strip_prefix("s3:http://")
        .expect("OPSI_BACKUP_TEST_S3 must be s3:http://host:port/bucket/prefix");
    let (host, path) = rest
        .split_once('/')
        .expect("a bucket in OPSI_BACKUP_TEST_S3");
    (host.to_string(), path.trim_end_matches('/').to_string())
}

/// One step of a tool: its run and what went over the wire meanwhile.
#[derive(Clone, Copy)]
struct Step {
    run: Run,
    net: Traffic,
}

fn step(b: &Bench, counts: &Arc<Counts>, label: &str, cmd: &mut Command) -> Step {
    let before = counts.now();
    let run = b.run(label, cmd);
    let net = counts.now() - before;
    b.log(&format!(
        "  {label}: {} requests, {} up, {} down",
        net.requests,
        fmt_bytes(net.up),
        fmt_bytes(net.down)
    ));
    Step { run, net }
}

fn main() {
    let o = opts();
    let b = Bench::new(o.dir.as_deref(), o.keep);
    // OPSI_BENCH_BIN: another build of the tool (one copied aside while the tests rebuild).
    let bin = std::env::var_os("OPSI_BENCH_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_opsi-backup")),
        PathBuf::from,
    );
    let restic = o.peers && installed("restic");
    let (upstream, bucket_prefix) = s3_target();
    let (ours_port, ours_net) = count_proxy::start(upstream.clone());
    let (restic_port, restic_net) = count_proxy::start(upstream);
    let repo = format!("s3:http://127.0.0.1:{ours_port}/{bucket_prefix}/ours");
    let copy_repo = format!("s3:http://127.0.0.1:{ours_port}/{bucket_prefix}/ours-copy");
    let restic_repo = format!("s3:http://127.0.0.1:{restic_port}/{bucket_prefix}/restic");
    let local = b.work.join("local-repo");
    let password = b.work.join("password");
    std::fs::write(&password, "s3 bench password\n").unwrap();
    eprintln!(
        "s3_bench: {} clients, seed {}, work dir {}, S3 {repo}",
        o.clients,
        o.seed,
        b.work.display()
    );

    let db = Db::create(&o.socket, o.keep);
    let size = data_size(o.clients, o.seed);
    let tree = gen::Tree {
        root: b.work.join("server"),
        seed: o.seed,
    };
    tree.generate(o.clients, &db.mysql_conf())
        .expect("generating the file tree");
    db.feed(|w| write_database(w, &size));
    let (tree_bytes, tree_files) = measure::tree_stats(&tree.peer_paths());
    b.log(&format!(
        "generated {} in {tree_files} files, database loaded",
        fmt_bytes(tree_bytes)
    ));

    let ours = |repository: &str, args: &[&str]| {
        let mut c = Command::new(&bin);
        c.arg("--root")
            .arg(&tree.root)
            .arg("--repository")
            .arg(repository)
            .arg("--log-file")
            .arg(b.work.join("opsi-backup.log"))
            .args(args)
            .env("OPSI_BACKUP_CACHE_DIR", b.work.join("cache"))
            .env("OPSI_BACKUP_PASSWORD_FILE", &password);
        c
    };
    let restic_cmd = |args: &[&str]| {
        let mut c = Command::new("restic");
        c.arg("--repo")
            .arg(&restic_repo)
            .args(["--quiet", "-o", "s3.region=garage"])
            .env("RESTIC_PASSWORD", "bench")
            .env("RESTIC_CACHE_DIR", b.work.join("restic-cache"))
            .args(args);
        c
    };
    let local_s = local.to_string_lossy().into_owned();
    // The repository on S3 is encrypted when this build can (its default there); the local one
    // is plain, as a server's nightly repository is.
    step(&b, &ours_net, "init (S3)", &mut ours(&repo, &["init"]));
    step(
        &b,
        &ours_net,
        "init (S3, copy target)",
        &mut ours(&copy_repo, &["init"]),
    );
    b.run("init (local)", &mut ours(&local_s, &["init"]));
    if restic {
        step(&b, &restic_net, "restic init", &mut restic_cmd(&["init"]));
    }
    let dump_file = b.work.join("mysqldump/opsi.sql");
    std::fs::create_dir_all(dump_file.parent().unwrap()).unwrap();
    let mut peer_paths = tree.peer_paths();
    peer_paths.push(dump_file.clone());

    struct Night {
        label: &'static str,
        ours: Step,
        floor: Run,
        restic: Option<Step>,
        copy: Step,
    }
    let night = |label: &'static str| -> Night {
        let ours_step = step(
            &b,
            &ours_net,
            &format!("create ({label})"),
            &mut ours(&repo, &["create"]),
        );
        let (mut c, _) = db.dump_cmd(Path::new("/dev/null"));
        let floor = b.run_to(
            &format!("mysqldump to /dev/null ({label})"),
            &mut c,
            Path::new("/dev/null"),
        );
        let restic_step = restic.then(|| {
            let (mut c, dest) = db.dump_cmd(&dump_file);
            b.run_to(&format!("mysqldump ({label})"), &mut c, &dest);
            step(
                &b,
                &restic_net,
                &format!("restic backup ({label})"),
                restic_cmd(&["backup", "--host", "opsiserver"]).args(&peer_paths),
            )
        });
        // The night into the local repository, then copied from there into S3.
        b.run(
            &format!("create, local ({label})"),
            &mut ours(&local_s, &["create"]),
        );
        let copy = step(
            &b,
            &ours_net,
            &format!("copy local → S3 ({label})"),
            ours(&copy_repo, &["copy", "--from-repository"]).arg(&local),
        );
        Night {
            label,
            ours: ours_step,
            floor,
            restic: restic_step,
            copy,
        }
    };
    let first = night("first");
    let mut reaudit = Vec::new();
    write_reaudit(&mut reaudit, &size, 1.0, o.seed + 100).unwrap();
    let mut nightly = Vec::new();
    write_nightly_changes(
        &mut nightly,
        &size,
        0.0,
        (o.clients / 500).max(2),
        o.seed + 200,
    )
    .unwrap();
    db.feed(|w| {
        w.write_all(&reaudit)?;
        w.write_all(&nightly)
    });
    for id in clients_in(&reaudit)
        .iter()
        .chain(clients_in(&nightly).iter())
    {
        tree.write_client(id, 1).unwrap();
    }
    let one = night("1% night");
    let unchanged = night("unchanged night");

    let export = step(
        &b,
        &ours_net,
        "export from S3 (bz2)",
        ours(&repo, &["export", "latest"]).arg(b.work.join("export.tar.bz2")),
    );
    let _ = std::fs::remove_file(b.work.join("export.tar.bz2"));
    let restore_root = b.work.join("restore-root");
    std::fs::create_dir_all(&restore_root).unwrap();
    let restore = step(
        &b,
        &ours_net,
        "restore from S3 (conf + file + dhcp)",
        Command::new(&bin)
            .arg("--root")
            .arg(&restore_root)
            .arg("--repository")
            .arg(&repo)
            .args([
                "restore",
                "latest",
                "--configuration",
                "--force",
                "--backends",
                "file",
                "--backends",
                "dhcp",
            ])
            .env("OPSI_BACKUP_CACHE_DIR", b.work.join("cache"))
            .env("OPSI_BACKUP_PASSWORD_FILE", &password),
    );
    let _ = std::fs::remove_dir_all(&restore_root);
    let restic_restore = restic.then(|| {
        let target = b.work.join("restic-restore");
        let s = step(
            &b,
            &restic_net,
            "restic restore",
            restic_cmd(&["restore", "latest", "--target"]).arg(&target),
        );
        let _ = std::fs::remove_dir_all(&target);
        s
    });
    let verify = step(
        &b,
        &ours_net,
        "verify (S3, every byte)",
        &mut ours(&repo, &["verify"]),
    );
    let dump_size = std::fs::metadata(&dump_file).map_or(0, |m| m.len());
    let _ = dir_size(&b.work);

    println!(
        "\n## s3_bench: {} clients, seed {}\n\nServer: {} in {tree_files} files + a {} mysqldump. \
         Each tool through its own counting proxy to the same S3 server.\n",
        o.clients,
        o.seed,
        fmt_bytes(tree_bytes),
        fmt_bytes(dump_size)
    );
    println!(
        "| step | opsi-backup | requests | up | peak RSS | restic | requests | up | peak RSS |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mib = |r: &Run| format!("{:.0} MiB", r.max_rss_kib as f64 / 1024.0);
    let row = |label: &str, s: &Step, p: Option<&Step>| {
        let peer = p.map_or("– | – | – | –".to_string(), |p| {
            format!(
                "{} | {} | {} | {}",
                fmt_secs(p.run.secs),
                p.net.requests,
                fmt_bytes(p.net.up),
                mib(&p.run)
            )
        });
        println!(
            "| {label} | {} | {} | {} | {} | {peer} |",
            fmt_secs(s.run.secs),
            s.net.requests,
            fmt_bytes(s.net.up),
            mib(&s.run)
        );
    };
    for n in [&first, &one, &unchanged] {
        row(&format!("create: {}", n.label), &n.ours, n.restic.as_ref());
    }
    for n in [&first, &one, &unchanged] {
        row(&format!("copy local → S3: {}", n.label), &n.copy, None);
    }
    row("export from S3 (bz2)", &export, None);
    row("restore from S3", &restore, restic_restore.as_ref());
    row("verify from S3 (every byte)", &verify, None);
    println!("\nWithout the dump (create minus `mysqldump` to /dev/null of the same night; restic's time excludes its mysqldump):\n");
    println!("| night | opsi-backup − dump | restic | restic ÷ ours | bytes up: ours ÷ restic |");
    println!("|---|---:|---:|---:|---:|");
    for n in [&first, &one, &unchanged] {
        let ours = (n.ours.run.secs - n.floor.secs).max(0.01);
        let (r, ratio, bytes) =
            n.restic
                .as_ref()
                .map_or(("–".into(), "–".into(), "–".into()), |p| {
                    (
                        fmt_secs(p.run.secs),
                        format!("{:.2}×", p.run.secs / ours),
                        format!("{:.3}", n.ours.net.up as f64 / p.net.up.max(1) as f64),
                    )
                });
        println!(
            "| {} | {} (dump {}) | {r} | {ratio} | {bytes} |",
            n.label,
            fmt_secs(ours),
            fmt_secs(n.floor.secs)
        );
    }
}
