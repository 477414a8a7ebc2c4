//! The chunk size for large files of bulk data (depot installers, WIM images, .opsi files):
//! what a new version of a large file costs in new bytes, against how many chunks (index rows,
//! ids in every snapshot) the file becomes, for average chunk sizes from 8 KiB to 4 MiB.
//!
//! The file is incompressible (as installers and images are). Its new version has the edits a
//! re-captured image or a rebuilt package shows: regions rewritten in place, insertions that
//! shift everything after them, and new data appended.
//!
//! `cargo bench --bench large_chunks [-- --mib 256]`. The spec's "Large files of bulk data"
//! gives a run of it.

use std::collections::HashSet;
use std::time::Instant;

use fastcdc::v2020::FastCDC;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

fn chunk_ids(data: &[u8], avg: u32) -> Vec<([u8; 32], usize)> {
    let (min, max) = if avg == 8 * 1024 {
        (2 * 1024, 64 * 1024) // the repository's own sizes
    } else {
        (avg / 4, avg * 4)
    };
    FastCDC::new(data, min, avg, max)
        .map(|c| {
            let bytes = &data[c.offset..c.offset + c.length];
            (*blake3::hash(bytes).as_bytes(), c.length)
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mib: usize = args
        .iter()
        .position(|a| a == "--mib")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let old = rng.bytes(mib << 20);
    let mut new = old.clone();
    // 20 regions of 64 KiB rewritten in place.
    for _ in 0..20 {
        let at = rng.below(new.len() - 65_536);
        let patch = rng.bytes(65_536);
        new[at..at + 65_536].copy_from_slice(&patch);
    }
    // 5 insertions of 1 MiB.
    for _ in 0..5 {
        let at = rng.below(new.len());
        let insert = rng.bytes(1 << 20);
        new.splice(at..at, insert);
    }
    // mib/8 MiB appended.
    new.extend(rng.bytes((mib << 20) / 8));
    let changed = 20 * 65_536 + 5 * (1 << 20) + (mib << 20) / 8;
    println!(
        "old {mib} MiB, new version {:.1} MiB; bytes actually new: {:.2} MiB",
        new.len() as f64 / 1048576.0,
        changed as f64 / 1048576.0
    );
    println!(
        "{:>9} {:>10} {:>14} {:>16} {:>10}",
        "avg", "chunks/GB", "new stored MiB", "x actually new", "time s"
    );
    for avg in [8 << 10, 64 << 10, 256 << 10, 512 << 10, 1 << 20, 4 << 20] {
        let t = Instant::now();
        let before: HashSet<[u8; 32]> = chunk_ids(&old, avg).into_iter().map(|c| c.0).collect();
        let after = chunk_ids(&new, avg);
        let stored: usize = after
            .iter()
            .filter(|c| !before.contains(&c.0))
            .map(|c| c.1)
            .sum();
        let per_gb = before.len() as f64 * 1024.0 / mib as f64;
        println!(
            "{:>8}K {:>10.0} {:>14.2} {:>16.2} {:>10.2}",
            avg >> 10,
            per_gb,
            stored as f64 / 1048576.0,
            stored as f64 / changed as f64,
            t.elapsed().as_secs_f64()
        );
    }
}
