use std::io::{Read, Write};

use super::*;

fn libbz2_decode(z: &[u8]) -> Vec<u8> {
    let mut back = Vec::new();
    bzip2::read::BzDecoder::new(z)
        .read_to_end(&mut back)
        .expect("libbz2 reads our stream");
    back
}

fn libbz2_encode(data: &[u8]) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn round_trip(data: &[u8]) -> Vec<u8> {
    let z = compress(data).expect("a block without repetition");
    assert_eq!(libbz2_decode(&z), data);
    z
}

/// Deterministic text shaped like a mysqldump: long INSERT lines of similar rows.
fn sql_like(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 200);
    let mut x: u32 = 99;
    while out.len() < len {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let client = (x >> 8) % 3000;
        let product = (x >> 4) % 200;
        out.extend_from_slice(
            format!(
                "('client{client}.opsi.example','product{product}','installed','4.2.{}',\
                 '2026-11-{:02} 0{}:{:02}:00'),",
                x % 7,
                1 + x % 28,
                x % 10,
                x % 60
            )
            .as_bytes(),
        );
        if x % 97 == 0 {
            out.extend_from_slice(b"\nINSERT INTO `PRODUCT_ON_CLIENT` VALUES ");
        }
    }
    out.truncate(len);
    out
}

#[test]
fn empty_input_is_the_empty_stream() {
    let z = compress(&[]).unwrap();
    assert_eq!(z, libbz2_encode(&[]));
    assert!(libbz2_decode(&z).is_empty());
}

#[test]
fn tiny_inputs_and_every_byte_value() {
    round_trip(b"x");
    round_trip(b"xy");
    round_trip(b"banana");
    let all: Vec<u8> = (0..=255u8).rev().chain(0..=255u8).collect();
    round_trip(&all);
    let mut x: u32 = 5;
    let random: Vec<u8> = (0..200_000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    round_trip(&random);
}

#[test]
fn runs_of_every_length_around_the_run_length_limits() {
    let mut data = Vec::new();
    for (i, len) in (1..300).chain([510, 511, 1000, 4099]).enumerate() {
        data.extend(std::iter::repeat_n(i as u8, len));
        data.push(b'|');
    }
    round_trip(&data);
    // A run the same as the count byte that follows it.
    let mut tricky = vec![b'e'; 4 + usize::from(b'e')];
    tricky.extend_from_slice(b"end");
    round_trip(&tricky);
}

#[test]
fn several_blocks_with_their_combined_crc() {
    let data = sql_like(2_500_000);
    let z = round_trip(&data);
    // Three blocks, each checked by the decoder's CRCs; also by the bzip2 tool when present.
    if let Ok(mut child) = std::process::Command::new("bzip2")
        .arg("-t")
        .stdin(std::process::Stdio::piped())
        .spawn()
    {
        child.stdin.take().unwrap().write_all(&z).unwrap();
        assert!(
            child.wait().unwrap().success(),
            "bzip2 -t rejects our stream"
        );
    }
}

#[test]
fn a_full_block_of_incompressible_runs() {
    // Runs of exactly 4 grow nothing but make the run-length stage emit 5 bytes per 4..=255
    // input bytes; random run lengths fill a block to its last byte.
    let mut data = Vec::new();
    let mut x: u32 = 3;
    while data.len() < 3_000_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let len = 1 + (x >> 20) as usize % 300;
        data.extend(std::iter::repeat_n((x >> 8) as u8, len));
    }
    round_trip(&data);
}

#[test]
fn size_is_close_to_bzip2_9() {
    let data = sql_like(1_800_000);
    let ours = round_trip(&data).len() as f64;
    let theirs = libbz2_encode(&data).len() as f64;
    assert!(ours <= theirs * 1.02, "ours {ours} vs libbz2 {theirs}");
}

#[test]
fn a_block_repeating_a_shorter_string_is_left_to_libbz2() {
    assert_eq!(compress(&b"ab".repeat(5000)), Err(Refused::Periodic));
    // Zeros become a periodic "\0\0\0\0\xfb" pattern after the run-length stage.
    assert_eq!(compress(&vec![0u8; 255 * 400]), Err(Refused::Periodic));
    round_trip(&vec![0u8; 255 * 400 + 7]);
}

#[test]
fn the_check_rejects_any_damage() {
    let data = sql_like(300_000);
    let mut scratch = Scratch::default();
    let (z, hints) = encode(&data, &mut scratch).unwrap();
    let mut v = verify::Scratch::default();
    assert!(verify::check(&z, &data, &hints, &mut v));

    // Every single-bit flip, at positions spread over the whole stream.
    for i in (0..z.len() * 8).step_by(97) {
        let mut bad = z.clone();
        bad[i / 8] ^= 0x80 >> (i % 8);
        assert!(
            !verify::check(&bad, &data, &hints, &mut v),
            "bit {i} flipped"
        );
    }
    // Cut short, or followed by more bytes.
    assert!(!verify::check(&z[..z.len() - 1], &data, &hints, &mut v));
    assert!(!verify::check(
        &[&z[..], b"\0"].concat(),
        &data,
        &hints,
        &mut v
    ));
    // Another input, one byte changed.
    let mut other = data.clone();
    other[123_456] ^= 1;
    assert!(!verify::check(&z, &other, &hints, &mut v));
    // Hints that do not join up into the one walk from the origin row.
    let mut wrong = hints.clone();
    wrong[0][1] = wrong[0][1].wrapping_add(1) % data.len() as u32;
    assert!(!verify::check(&z, &data, &wrong, &mut v));
    let mut swapped = hints.clone();
    swapped[0].swap(1, 2);
    assert!(!verify::check(&z, &data, &swapped, &mut v));
}
