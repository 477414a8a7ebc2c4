//! The server's bulk data at scale: a generated opsi depot of N GiB (products of mixed sizes,
//! Windows images, driver trees of many small files, installers shared between products),
//! backed up by opsi-backup (`create --backends depot`) and, when installed, restic, in one
//! run: the first backup, an unchanged night, a night with a new version of a 2 GB product
//! (80% of its files as before, rewritten as a package install does) plus a few edited
//! scripts, then verify and a restore of the whole depot. Prints a markdown table of times,
//! bytes added, peak memory and the goals of the bulk data work.
//!
//! Run: `cargo bench --bench depot_bench -- --gib 10` (see benches/README.md). Options: --gib N
//! (default 1), --files N (default 10,000 per GiB), --seed S, --dir DIR for the work directory
//! (default the system temp dir; it needs about 4 × N GiB), --no-peers, --keep.

#[path = "opsi_bench/measure.rs"]
#[allow(dead_code)]
mod measure;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use measure::{dir_size, fmt_bytes, fmt_secs, installed, Bench, Run};

const GIB: u64 = 1 << 30;
const T0: i64 = 1_733_000_000;

struct Opts {
    gib: f64,
    files: usize,
    seed: u64,
    dir: Option<PathBuf>,
    peers: bool,
    keep: bool,
}

fn opts() -> Opts {
    let value = measure::arg;
    let gib: f64 = value("--gib").map_or(1.0, |v| v.parse().expect("--gib"));
    Opts {
        gib,
        files: value("--files").map_or((10_000.0 * gib) as usize, |v| v.parse().expect("--files")),
        seed: value("--seed").map_or(1, |v| v.parse().expect("--seed")),
        dir: value("--dir").map(PathBuf::from),
        peers: !measure::flag("--no-peers"),
        keep: measure::flag("--keep"),
    }
}

/// Deterministic pseudo-random numbers (xorshift): the same depot on every run.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Log-uniform between `lo` and `hi`: many small files, few big ones.
    fn log_between(&mut self, lo: u64, hi: u64) -> u64 {
        let (l, h) = ((lo as f64).ln(), (hi as f64).ln());
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (l + u * (h - l)).exp() as u64
    }
}

/// One file of the depot: where, how big, and which content (equal seeds, equal bytes).
#[derive(Clone)]
struct FileSpec {
    path: String,
    len: u64,
    content: u64,
    text: bool,
    mode: u32,
}

/// Writes `len` bytes of the content `seed`: incompressible noise for binaries, opsi-like text
/// (which compresses) for scripts and .inf files.
fn write_content(path: &Path, spec: &FileSpec, buf: &mut Vec<u8>) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = fs::File::create(path).unwrap();
    let mut rng = Rng::new(spec.content);
    let mut left = spec.len;
    const WORDS: &[&str] = &[
        "[Files_copy]",
        "copy",
        "-sV",
        "\"%ScriptPath%\\files\\*\"",
        "\"%ProgramFiles64Dir%\"",
        "DefVar",
        "$ProductId$",
        "Set",
        "if",
        "endif",
        "Message",
        "Winbatch_install",
        "DriverVer=06/21/2006,10.0.19041.1",
        "Class=Net",
        "Provider=%Intel%",
        "CatalogFile",
        "[Version]",
        "Signature=\"$WINDOWS NT$\"",
        "HKLM\\Software\\opsi.org",
        "\r\n",
    ];
    while left > 0 {
        buf.clear();
        let n = left.min(1 << 20) as usize;
        if spec.text {
            while buf.len() < n {
                buf.extend_from_slice(WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes());
                buf.push(b' ');
            }
        } else {
            while buf.len() < n {
                buf.extend_from_slice(&rng.next().to_le_bytes());
            }
        }
        buf.truncate(n);
        f.write_all(buf).unwrap();
        left -= n as u64;
    }
    drop(f);
    fs::set_permissions(path, fs::Permissions::from_mode(spec.mode)).unwrap();
}

fn set_mtime(path: &Path, secs: i64) {
    let t = nix::sys::time::TimeSpec::new(secs, 0);
    nix::sys::stat::utimensat(
        None,
        path,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

/// The depot's products: (name, files). Sizes are fractions of the total so that the shape
/// stays the same at 1 and 100 GiB.
struct Depot {
    products: Vec<(String, Vec<FileSpec>)>,
}

const UPDATED: &str = "office2021";

fn depot(o: &Opts) -> Depot {
    let total = (o.gib * GIB as f64) as u64;
    let mut rng = Rng::new(o.seed);
    let mut next_content = o.seed << 32;
    let mut fresh = || {
        next_content += 1;
        next_content
    };
    let mut products: Vec<(String, Vec<FileSpec>)> = Vec::new();
    let script = |name: &str, c: u64| FileSpec {
        path: format!("{name}.opsiscript"),
        len: 2_000 + c % 6_000,
        content: c,
        text: true,
        mode: 0o660,
    };

    // Two Windows images: an install.wim each (22% of the total), one boot.wim they share,
    // and driver trees of many small files (.inf text, .sys/.cat binaries), 60% shared.
    let small_files = o.files * 97 / 100;
    let drivers_each = small_files * 3 / 10;
    let mut win10_drivers = Vec::new();
    for i in 0..drivers_each {
        let text = i % 3 == 0;
        win10_drivers.push(FileSpec {
            path: format!(
                "drivers/pack{:03}/dev{i:05}.{}",
                i / 200,
                if text { "inf" } else { "sys" }
            ),
            len: rng.log_between(1_000, 40_000),
            content: fresh(),
            text,
            mode: 0o644,
        });
    }
    let boot = FileSpec {
        path: "installfiles/sources/boot.wim".into(),
        len: total * 3 / 100,
        content: fresh(),
        text: false,
        mode: 0o644,
    };
    for (name, share) in [("win10-x64", 1.0), ("win11-x64", 0.6)] {
        let mut files = vec![
            FileSpec {
                path: "installfiles/sources/install.wim".into(),
                len: total * 22 / 100,
                content: fresh(),
                text: false,
                mode: 0o644,
            },
            boot.clone(),
            script("setup", fresh()),
        ];
        for d in &win10_drivers {
            let mut d = d.clone();
            if rng.below(100) as f64 >= share * 100.0 {
                d.content = fresh();
            }
            files.push(d);
        }
        products.push((name.to_string(), files));
    }

    // The product whose new version arrives on the third night: 2 GB at 10 GiB, in ~1500
    // files of cabs and msis.
    let office_bytes = total / 5;
    let mut office = vec![script("setup", fresh())];
    let mut sum = 0;
    let mut i = 0;
    while sum < office_bytes {
        let len = rng
            .log_between(100_000, 4_000_000)
            .min(office_bytes - sum)
            .max(1);
        office.push(FileSpec {
            path: format!("files/cab{:02}/data{i:04}.cab", i / 100),
            len,
            content: fresh(),
            text: false,
            mode: 0o644,
        });
        sum += len;
        i += 1;
    }
    products.push((UPDATED.to_string(), office));

    // The rest: products of mixed sizes; every fifth shares half its installers with the
    // one before (an -esr beside a product, two versions side by side).
    let used: u64 = products
        .iter()
        .flat_map(|(_, f)| f.iter().map(|f| f.len))
        .sum::<u64>()
        - boot.len;
    let mut left_bytes = total.saturating_sub(used);
    let mut left_files = small_files - 2 * drivers_each;
    let mut n = 0;
    while left_bytes > 0 && left_files > 0 {
        let name = format!("product{n:03}");
        let count = (rng.log_between(5, 2_000) as usize).min(left_files);
        let budget = (rng.log_between(2 << 20, 400 << 20)).min(left_bytes);
        let mut files = vec![script("setup", fresh())];
        let share_with = (n % 5 == 4).then(|| products.last().unwrap().1.clone());
        for k in 0..count {
            let text = k % 4 == 0;
            let len = if text {
                rng.log_between(200, 20_000)
            } else {
                budget / count as u64 * rng.log_between(1, 8) / 3 + 1
            };
            let content = match &share_with {
                Some(prev) if k % 2 == 0 && k + 1 < prev.len() => {
                    let p = &prev[k + 1];
                    files.push(FileSpec {
                        path: p.path.clone(),
                        ..p.clone()
                    });
                    continue;
                }
                _ => fresh(),
            };
            files.push(FileSpec {
                path: format!(
                    "files/{}{k:04}.{}",
                    if text { "conf" } else { "bin" },
                    if text { "ini" } else { "exe" }
                ),
                len,
                content,
                text,
                mode: if text { 0o660 } else { 0o755 },
            });
        }
        let bytes: u64 = files.iter().map(|f| f.len).sum();
        left_bytes = left_bytes.saturating_sub(bytes);
        left_files = left_files.saturating_sub(files.len());
        products.push((name, files));
        n += 1;
    }
    // The files still missing from the count: a driver collection of many small files (as
    // the drivers products of a real depot are), so that a night walks the full count.
    if left_files > 0 {
        let files = (0..left_files)
            .map(|i| {
                let text = i % 3 == 0;
                FileSpec {
                    path: format!(
                        "drivers/{:04}/d{i:05}.{}",
                        i / 100,
                        if text { "inf" } else { "cat" }
                    ),
                    len: rng.log_between(500, 20_000),
                    content: fresh(),
                    text,
                    mode: 0o644,
                }
            })
            .collect();
        products.push(("hwdrivers".to_string(), files));
    }
    Depot { products }
}

fn write_product(dir: &Path, files: &[FileSpec], mtime: i64, buf: &mut Vec<u8>) {
    for f in files {
        let p = dir.join(&f.path);
        write_content(&p, f, buf);
        set_mtime(&p, mtime);
    }
}

/// A root with the opsi configuration that tells where the depot is (the file backend's
/// config server entry) and the depot itself.
fn write_server(root: &Path, d: &Depot) -> (u64, usize) {
    let etc = root.join("etc/opsi");
    fs::create_dir_all(etc.join("backends")).unwrap();
    fs::create_dir_all(etc.join("backendManager")).unwrap();
    fs::write(
        etc.join("backends/file.conf"),
        "module = 'File'\nconfig = {\n    \"baseDir\": u\"/var/lib/opsi/config\",\n    \"hostKeyFile\": u\"/etc/opsi/pckeys\",\n}\n",
    )
    .unwrap();
    fs::write(
        etc.join("backendManager/dispatch.conf"),
        "backend_.* : file\n.* : file\n",
    )
    .unwrap();
    let depot = root.join("var/lib/opsi/depot");
    let mut buf = Vec::new();
    let (mut bytes, mut files) = (0, 0);
    for (name, specs) in &d.products {
        write_product(&depot.join(name), specs, T0, &mut buf);
        bytes += specs.iter().map(|f| f.len).sum::<u64>();
        files += specs.len();
    }
    (bytes, files)
}

/// The third night: a new version of the big product, installed as opsi-package-manager does
/// (the old directory replaced by freshly extracted files: new inodes and mtimes), sharing 80%
/// of its bytes with the old one; and a few edited scripts elsewhere.
/// The old directory is moved to `aside` rather than deleted: on ext4 without a journal, the
/// file system skips inodes freed in the last minutes when it makes new ones, which would slow
/// the restores that follow (the first one, ours, most).
fn write_new_version(root: &Path, aside: &Path, d: &Depot, seed: u64) -> u64 {
    let depot = root.join("var/lib/opsi/depot");
    let (_, files) = d.products.iter().find(|(n, _)| n == UPDATED).unwrap();
    let dir = depot.join(UPDATED);
    fs::rename(&dir, aside).unwrap();
    let total: u64 = files.iter().map(|f| f.len).sum();
    let mut rng = Rng::new(seed ^ 0xfeed);
    let mut new_bytes = 0;
    let mut next = vec![];
    for f in files {
        let mut f = f.clone();
        if new_bytes < total / 5 && rng.below(5) == 0 {
            f.content ^= 0xdead_beef_0000;
            new_bytes += f.len;
        }
        next.push(f);
    }
    let mut buf = Vec::new();
    write_product(&dir, &next, T0 + 86_400 * 2, &mut buf);
    for (name, _) in d.products.iter().filter(|(n, _)| n.ends_with('7')).take(5) {
        let p = depot.join(name).join("setup.opsiscript");
        let mut s = fs::read(&p).unwrap();
        s.extend_from_slice(b"\r\nMessage \"updated\"\r\n");
        fs::write(&p, s).unwrap();
    }
    total
}

struct Night {
    label: &'static str,
    ours: Run,
    ours_added: u64,
    restic: Option<(Run, u64)>,
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
    let root = b.work.join("server");
    let repo = b.work.join("repo");
    let restic_repo = b.work.join("restic-repo");
    fs::create_dir_all(&root).unwrap();

    b.log(&format!(
        "generating a depot of {} GiB, ~{} files",
        o.gib, o.files
    ));
    let d = depot(&o);
    let (bytes, files) = write_server(&root, &d);
    b.log(&format!(
        "depot: {} in {files} files, {} products",
        fmt_bytes(bytes),
        d.products.len()
    ));

    let ours = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.arg("--repository").arg(&repo).args(args);
        c
    };
    let create = || {
        let mut c = ours(&["create", "--backends", "depot", "--root"]);
        c.arg(&root);
        c
    };
    let restic_cmd = |args: &[&str]| {
        let mut c = Command::new("restic");
        c.arg("--repo")
            .arg(&restic_repo)
            .args(args)
            .env("RESTIC_PASSWORD", "bench")
            .env("RESTIC_CACHE_DIR", b.work.join("restic-cache"));
        c
    };
    let depot_dir = root.join("var/lib/opsi/depot");

    b.run("opsi-backup init", &mut ours(&["init"]));
    if restic {
        b.run("restic init", &mut restic_cmd(&["init"]));
    }
    let mut nights = Vec::new();
    let mut night = |label: &'static str| {
        let before = dir_size(&repo);
        let r = b.run(&format!("opsi-backup create ({label})"), &mut create());
        let added = dir_size(&repo) - before;
        let peer = restic.then(|| {
            let before = dir_size(&restic_repo);
            let r = b.run(
                &format!("restic backup ({label})"),
                restic_cmd(&["backup", "--host", "opsiserver"]).arg(&depot_dir),
            );
            (r, dir_size(&restic_repo) - before)
        });
        nights.push(Night {
            label,
            ours: r,
            ours_added: added,
            restic: peer,
        });
    };
    night("first");
    night("unchanged");
    let updated = write_new_version(&root, &b.work.join("replaced"), &d, o.seed);
    night("new 2 GB-class version, 80% shared");

    let verify = b.run("opsi-backup verify", &mut ours(&["verify"]));
    // A target must lie under the root (and off the system directories).
    let target = root.join("srv/depot-restore");
    let restore = b.run(
        "opsi-backup restore (whole depot)",
        ours(&[
            "restore",
            "latest",
            "--force",
            "--backends",
            "depot",
            "--root",
        ])
        .arg(&root)
        .arg("--target")
        .arg(&target),
    );
    let restic_restore = restic.then(|| {
        let t = b.work.join("restore-restic");
        let r = b.run(
            "restic restore",
            restic_cmd(&["restore", "latest", "--target"]).arg(&t),
        );
        let _ = fs::remove_dir_all(&t);
        r
    });
    let (restored, _) = measure::tree_stats(std::slice::from_ref(&target));
    assert_eq!(
        restored,
        dir_size(&depot_dir),
        "the restore differs in size from the depot"
    );
    let _ = fs::remove_dir_all(&target);
    let index = ["index.sqlite", "index.sqlite-wal"]
        .iter()
        .map(|n| fs::metadata(repo.join(n)).map_or(0, |m| m.len()))
        .sum::<u64>();

    println!(
        "\n## depot_bench: {} in {files} files, {} products\n",
        fmt_bytes(bytes),
        d.products.len()
    );
    println!("| night | opsi-backup | added | peak RSS | restic | added | peak RSS | time ratio |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mib = |r: &Run| format!("{:.0} MiB", r.max_rss_kib as f64 / 1024.0);
    for n in &nights {
        let (rt, ra, rm, ratio) = match &n.restic {
            Some((r, a)) => (
                fmt_secs(r.secs),
                fmt_bytes(*a),
                mib(r),
                format!("{:.2}×", r.secs / n.ours.secs),
            ),
            None => ("–".into(), "–".into(), "–".into(), "–".into()),
        };
        println!(
            "| {} | {} | {} | {} | {rt} | {ra} | {rm} | {ratio} |",
            n.label,
            fmt_secs(n.ours.secs),
            fmt_bytes(n.ours_added),
            mib(&n.ours)
        );
    }
    let rr = restic_restore.as_ref();
    println!(
        "| restore, whole depot | {} | | {} | {} | | {} | {} |",
        fmt_secs(restore.secs),
        mib(&restore),
        rr.map_or("–".into(), |r| fmt_secs(r.secs)),
        rr.map_or("–".into(), mib),
        rr.map_or("–".into(), |r| format!("{:.2}×", r.secs / restore.secs))
    );
    println!(
        "| verify (every byte) | {} | | {} | | | | |",
        fmt_secs(verify.secs),
        mib(&verify)
    );
    println!(
        "\nRepository: {} (restic: {}); index {} = {:.1} MB per GiB of depot. The new version: {} \
         ({} added, {:.1}%).",
        fmt_bytes(dir_size(&repo)),
        if restic {
            fmt_bytes(dir_size(&restic_repo))
        } else {
            "–".into()
        },
        fmt_bytes(index),
        index as f64 / 1e6 / (bytes as f64 / GIB as f64),
        fmt_bytes(updated),
        fmt_bytes(nights[2].ours_added),
        100.0 * nights[2].ours_added as f64 / updated as f64
    );
    goals(&nights, &restore, rr, updated, &[&verify, &restore]);
}

/// The goals at this size, each with its measured figure (exact bytes where the two
/// tools are close).
fn goals(
    nights: &[Night],
    restore: &Run,
    restic_restore: Option<&Run>,
    updated: u64,
    more: &[&Run],
) {
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    println!(
        "
| goal | measured | target | |
|---|---:|---:|---|"
    );
    if let Some((r, added)) = &nights[0].restic {
        let (ours, time) = (nights[0].ours_added, r.secs / nights[0].ours.secs);
        println!(
            "| first backup ≥ 1.5× faster than restic | {time:.2}× | ≥ 1.5× | {} |",
            verdict(time >= 1.5)
        );
        println!(
            "| first backup stores ≤ restic ({ours} B against {added} B) | {:.5} | ≤ 1 | {} |",
            ours as f64 / *added as f64,
            verdict(ours <= *added)
        );
    }
    let unchanged = nights[1].ours.secs;
    println!(
        "| unchanged night | {} | ≤ 3 s | {} |",
        fmt_secs(unchanged),
        verdict(unchanged <= 3.0)
    );
    let share = nights[2].ours_added as f64 / updated as f64;
    println!(
        "| new version adds ≤ 25% of its size | {:.1}% | ≤ 25% | {} |",
        100.0 * share,
        verdict(share <= 0.25)
    );
    let peak = nights
        .iter()
        .map(|n| &n.ours)
        .chain(more.iter().copied())
        .map(|r| r.max_rss_kib)
        .max()
        .unwrap_or(0) as f64
        / 1024.0;
    println!(
        "| peak memory ≤ 256 MiB | {peak:.0} MiB | ≤ 256 MiB | {} |",
        verdict(peak <= 256.0)
    );
    if let Some(r) = restic_restore {
        let speed = r.secs / restore.secs;
        println!(
            "| restore ≥ 1.5× restic's speed | {speed:.2}× | ≥ 1.5× | {} |",
            verdict(speed >= 1.5)
        );
    }
}
