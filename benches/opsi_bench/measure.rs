//! Running commands with wall time, CPU time and peak RSS (from wait4's rusage), sizes on
//! disk, and formatting.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// What one command cost.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Run {
    pub secs: f64,
    pub user: f64,
    pub sys: f64,
    /// The peak RSS of the process or of the largest of its waited-for descendants.
    pub max_rss_kib: u64,
    /// CPU seconds other processes used meanwhile (the machine may be shared).
    pub others: f64,
    /// CPU seconds the hypervisor gave to other guests while this one wanted to run (steal
    /// time): a shared host slows every figure of a run by that much.
    pub stolen: f64,
}

impl Run {
    pub(crate) fn cpu(&self) -> f64 {
        self.user + self.sys
    }
}

/// The work directory and the log of what ran.
pub(crate) struct Bench {
    pub work: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    start: Instant,
}

impl Bench {
    pub(crate) fn new(parent: Option<&Path>, keep: bool) -> Bench {
        let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
        std::fs::create_dir_all(&parent).expect("creating the work directory's parent");
        let tmp = tempfile::Builder::new()
            .prefix("opsi-bench-")
            .tempdir_in(&parent)
            .expect("creating the work directory");
        let work = tmp.path().to_path_buf();
        std::fs::create_dir_all(work.join("logs")).unwrap();
        Bench {
            work,
            _tmp: if keep {
                let _ = tmp.keep();
                None
            } else {
                Some(tmp)
            },
            start: Instant::now(),
        }
    }

    pub(crate) fn log(&self, msg: &str) {
        eprintln!("[{:7.1}s] {msg}", self.start.elapsed().as_secs_f64());
    }

    /// Runs `cmd` with its output in logs/; panics with its stderr when it fails.
    pub(crate) fn run(&self, label: &str, cmd: &mut Command) -> Run {
        let out = self.work.join("logs").join(format!("{}.out", slug(label)));
        self.run_to(label, cmd, &out)
    }

    /// Runs `cmd` with its standard output into `stdout`.
    // The child is reaped by wait4 below, which also gives its rusage.
    #[allow(clippy::zombie_processes)]
    pub(crate) fn run_to(&self, label: &str, cmd: &mut Command, stdout: &Path) -> Run {
        let err_path = self.work.join("logs").join(format!("{}.err", slug(label)));
        // Earlier commands' writeback must not slow this one down (restore fsyncs every file).
        // SAFETY: sync has no preconditions.
        unsafe { libc::sync() };
        wait_idle();
        let (busy_before, stolen_before) = cpu_secs();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(File::create(stdout).expect("creating the output file"))
            .stderr(File::create(&err_path).expect("creating the log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("{label}: cannot start {cmd:?}: {e}"));
        let t = Instant::now();
        let mut status = 0;
        // SAFETY: rusage is plain data; wait4 fills it for our own child.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let pid = child.id() as libc::pid_t;
        let r = loop {
            // SAFETY: status and ru are live locals wait4 writes into.
            let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
            if r == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
            {
                continue;
            }
            break r;
        };
        let secs = t.elapsed().as_secs_f64();
        let (busy, stolen) = cpu_secs();
        let (busy, stolen) = (busy - busy_before, stolen - stolen_before);
        assert_eq!(r, pid, "wait4 failed: {}", std::io::Error::last_os_error());
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        let run = Run {
            secs,
            user: tv(ru.ru_utime),
            sys: tv(ru.ru_stime),
            max_rss_kib: ru.ru_maxrss as u64,
            others: 0.0,
            stolen,
        };
        let run = Run {
            others: (busy - run.cpu()).max(0.0),
            ..run
        };
        let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
        if !ok {
            let err = std::fs::read_to_string(&err_path).unwrap_or_default();
            panic!("{label} failed ({status:#x}): {cmd:?}\n{err}");
        }
        self.log(&format!(
            "{label}: {} (CPU {}, peak RSS {:.1} MiB, others' CPU {}, stolen {})",
            fmt_secs(secs),
            fmt_secs(run.cpu()),
            run.max_rss_kib as f64 / 1024.0,
            fmt_secs(run.others),
            fmt_secs(run.stolen)
        ));
        run
    }
}

/// CPU seconds all processes of the machine spent so far, and the steal time so far (the
/// first line of /proc/stat).
fn cpu_secs() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: busy is everything but idle, iowait and
    // steal (time the guest wanted to run but the host ran others).
    let busy: f64 = ticks
        .iter()
        .take(7)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    let steal = ticks.get(7).copied().unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (busy / hz, steal / hz)
}

/// Waits (up to a minute) until the machine is quiet: MariaDB flushes and purges for seconds
/// after a bulk load or a night's changes, which would slow whichever command runs first
/// (always ours) and not the peers that follow. Its page cleaner writes the pages a restore
/// dirtied for ~30 s afterwards at a few MB/s with little CPU: a command that syncs what it
/// writes then waits behind it (a first `create --backends file` took 1.45 s instead of 0.6 s
/// right after a database restore), so the disks must be quiet too.
fn wait_idle() {
    const WINDOW: f64 = 0.25;
    // The page cleaner writes once a second: the disks are judged over five windows.
    const DISK_WINDOWS: usize = 5;
    let start = Instant::now();
    let mut written = std::collections::VecDeque::from([sectors_written()]);
    while start.elapsed().as_secs() < 60 {
        let (before, _) = cpu_secs();
        std::thread::sleep(std::time::Duration::from_secs_f64(WINDOW));
        let now = sectors_written();
        written.push_back(now);
        if written.len() > DISK_WINDOWS + 1 {
            written.pop_front();
        }
        // Under a tenth of a core busy, under 1 MiB written in the last 1.25 s.
        let quiet_disks = written.len() > DISK_WINDOWS && now.saturating_sub(written[0]) < 2048;
        if cpu_secs().0 - before < 0.1 * WINDOW && quiet_disks {
            return;
        }
    }
}

/// Sectors (512 bytes) written to the machine's disks so far (/proc/diskstats; partitions
/// count twice, which only makes the quiet test stricter).
fn sectors_written() -> u64 {
    std::fs::read_to_string("/proc/diskstats")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(9)?.parse::<u64>().ok())
        .sum()
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Bytes in regular files under `p` (a missing `p` counts 0).
pub(crate) fn dir_size(p: &Path) -> u64 {
    tree_stats(&[p.to_path_buf()]).0
}

/// Bytes and number of regular files under the given paths.
pub(crate) fn tree_stats(paths: &[PathBuf]) -> (u64, u64) {
    files(paths).fold((0, 0), |(bytes, files), e| {
        (bytes + e.metadata().map_or(0, |m| m.len()), files + 1)
    })
}

/// Reads every file under `paths`, so that the next command finds them in the page cache.
pub(crate) fn warm_cache(paths: &[PathBuf]) {
    for e in files(paths) {
        if let Ok(mut f) = File::open(e.path()) {
            let _ = std::io::copy(&mut f, &mut std::io::sink());
        }
    }
}

/// The regular files under `paths` (unreadable entries left out).
fn files(paths: &[PathBuf]) -> impl Iterator<Item = walkdir::DirEntry> + '_ {
    paths
        .iter()
        .flat_map(|p| walkdir::WalkDir::new(p).into_iter().filter_map(|e| e.ok()))
        .filter(|e| e.file_type().is_file())
}

/// The value after option `name` on the bench's command line (`--gib 10`), if given.
pub(crate) fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let at = args.iter().position(|a| a == name)?;
    args.get(at + 1).cloned()
}

/// Whether flag `name` is on the bench's command line (`--keep`).
pub(crate) fn flag(name: &str) -> bool {
    std::env::args().skip(1).any(|a| a == name)
}

/// Whether `program` is on PATH.
pub(crate) fn installed(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .any(|d| std::fs::metadata(d.join(program)).is_ok_and(|m| m.is_file()))
    })
}

/// The first line a program prints for `args`.
pub(crate) fn version(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "not installed".into())
}

pub(crate) fn fmt_secs(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.2} s")
    } else {
        format!("{s:.1} s")
    }
}

pub(crate) fn fmt_bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} KB", b / 1e3)
    } else {
        format!("{b} B")
    }
}
