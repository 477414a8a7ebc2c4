//! Memory stays flat while a multi-GiB member is stored and replayed (spec:
//! `store-format/README.md`, section "Memory"). Slow, so ignored by default:
//! `OPSI_BACKUP_MEM_GIB=5 cargo test --test store_memory -- --ignored --nocapture`.

use std::io::{self, Read};

use opsi_backup::member::{Member, MemberKind, Mtime};
use opsi_backup::sink::MemberSink;
use opsi_backup::store::{Repository, SnapshotMeta};

/// `left` bytes of text-like pseudo-random data, generated on the fly.
struct Generated {
    left: u64,
    x: u64,
}

impl Read for Generated {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = (out.len() as u64).min(self.left) as usize / 8 * 8;
        let n = if n == 0 {
            self.left.min(out.len() as u64) as usize
        } else {
            n
        };
        for w in out[..n].chunks_mut(8) {
            self.x ^= self.x << 13;
            self.x ^= self.x >> 7;
            self.x ^= self.x << 17;
            for (i, b) in w.iter_mut().enumerate() {
                *b = 0x30 + ((self.x >> (i * 6)) & 0x3f) as u8;
            }
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Peak resident memory of this process so far, in MiB.
fn peak_rss_mib() -> u64 {
    // SAFETY: rusage is plain data, valid when zeroed.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    u.ru_maxrss as u64 / 1024
}

struct Count(u64);

impl MemberSink for Count {
    fn add(&mut self, _m: &Member, content: &mut dyn Read) -> opsi_backup::Result<()> {
        self.0 += io::copy(content, &mut io::sink()).unwrap();
        Ok(())
    }
}

#[test]
#[ignore = "slow: streams several GiB"]
fn multi_gib_member_in_bounded_memory() {
    let gib: u64 = std::env::var("OPSI_BACKUP_MEM_GIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let size = gib << 30;
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(&dir.path().join("r")).unwrap();
    let meta = SnapshotMeta {
        time: 1,
        host: "srv".into(),
        backends: vec!["mysql".into()],
        sysinfo: vec![],
        source: "create".into(),
    };
    let member = Member {
        path: "CONTENT/BACKENDS/MYSQL/mysql/database.sql".into(),
        kind: MemberKind::File,
        mode: 0o600,
        uid: 0,
        gid: 0,
        uname: "root".into(),
        gname: "root".into(),
        mtime: Mtime { secs: 0, pax: None },
        size: 0,
        raw_header: None,
        stamp: None,
        xattrs: Vec::new(),
    };
    let start = std::time::Instant::now();
    let mut w = repo.begin_snapshot(meta).unwrap();
    let stored = w
        .add_unsized(
            member,
            &mut Generated {
                left: size,
                x: 0x1234_5678_9abc_def1,
            },
        )
        .unwrap();
    let info = w.commit().unwrap();
    let write_peak = peak_rss_mib();
    eprintln!(
        "stored {gib} GiB in {:.1?}: added {} MB, peak RSS {write_peak} MiB",
        start.elapsed(),
        info.added / 1_000_000
    );
    assert_eq!(stored, size);

    let start = std::time::Instant::now();
    let mut count = Count(0);
    repo.replay(&info.id, &mut count).unwrap();
    assert_eq!(count.0, size);
    let peak = peak_rss_mib();
    eprintln!("replayed in {:.1?}, peak RSS {peak} MiB", start.elapsed());
    assert!(peak < 256, "peak RSS {peak} MiB");
}
