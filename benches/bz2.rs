//! Our bzip2 compressor (`crates/bz2-encoder`, including the decoding check it makes of every
//! stream) against libbz2 -9, one thread, on the export's segments of a file: speed, output
//! sizes, and what a check by libbz2's decoder would cost instead.
//!
//! Run: `cargo bench --bench bz2 -- FILE` (e.g. an uncompressed export, `export -c none`).
//! Every segment is cut at 768 KiB, an export's average, compressed by both and decoded by
//! libbz2; a mismatch aborts.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use bz2_encoder as bz2;

fn main() {
    let Some(path) = std::env::args().skip(1).find(|a| !a.starts_with("--")) else {
        eprintln!("usage: cargo bench --bench bz2 -- FILE");
        return;
    };
    let data = std::fs::read(&path).expect("readable input");
    let (mut ours, mut theirs, mut check) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut ours_len, mut theirs_len) = (0usize, 0usize);
    for seg in data.chunks(768 << 10) {
        let t = Instant::now();
        let z = bz2::compress(seg).expect("no periodic block in the input");
        ours += t.elapsed();
        ours_len += z.len();

        let t = Instant::now();
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
        e.write_all(seg).unwrap();
        theirs_len += e.finish().unwrap().len();
        theirs += t.elapsed();

        let t = Instant::now();
        let mut back = Vec::with_capacity(seg.len());
        bzip2::read::BzDecoder::new(&z[..])
            .read_to_end(&mut back)
            .unwrap();
        check += t.elapsed();
        assert!(back == seg, "a segment does not decode to its input");
    }
    let mb = data.len() as f64 / 1e6;
    println!(
        "| {} MB, 768 KiB segments | time | MB/s | output |",
        mb.round()
    );
    println!("|---|---:|---:|---:|");
    for (name, t, len) in [
        ("opsi-backup bz2 (with its check)", ours, ours_len),
        ("libbz2 -9", theirs, theirs_len),
    ] {
        let s = t.as_secs_f64();
        println!("| {name} | {s:.2} s | {:.1} | {len} |", mb / s);
    }
    let s = check.as_secs_f64();
    println!("| libbz2 decode | {s:.2} s | {:.1} | |", mb / s);
    println!(
        "\nours {:.2}x faster, output {:+.2}%",
        theirs.as_secs_f64() / ours.as_secs_f64(),
        (ours_len as f64 / theirs_len as f64 - 1.0) * 100.0
    );
}
