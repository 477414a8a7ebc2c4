//! Entry points for the coverage-guided fuzz targets in `fuzz/` and for the corpus replay in
//! `tests/fuzz_corpus.rs`: one function per parser of untrusted bytes. Each takes arbitrary
//! bytes and must return (an `Err` is fine) without panicking, hanging or allocating more than
//! the input justifies. Not part of the supported API.

use std::io::{Cursor, Read, Write};

use crate::archive::scan::Scan;
use crate::archive::tar_reader::TarReader;

/// An archive as `list`, `verify`, `restore` and `import` read it: compression detected from
/// the content (bzip2, gzip or none), the tar stream with PAX/GNU headers, CONTROL/checksums
/// and CONTROL/sysinfo, and the backend configuration files restore would plan with.
pub fn archive(data: &[u8]) {
    let Ok((stream, _)) = crate::archive::compression::open_tar_reader(Cursor::new(data.to_vec()))
    else {
        return;
    };
    let mut scan = Scan::default();
    if TarReader::new(stream).replay(&mut scan).is_ok() {
        let _ = scan.problems();
        let _ = scan.contains.names();
        for bytes in scan.planning_files.values() {
            backend_conf(bytes);
        }
    }
}

/// The project's own bzip2 encoder and the decoder that proves each stream it writes: the
/// input's tail is compressed, the stream is damaged where the input's first bytes say, and
/// the decoder must refuse the damaged stream (or, if the damage left it intact, accept it)
/// without panicking.
pub fn bz2_stream(data: &[u8]) {
    let (edits, plain) = data.split_at(data.len().min(16));
    let Ok((mut z, hints)) = bz2_encoder::encode_for_fuzzing(plain) else {
        return;
    };
    assert!(bz2_encoder::check_for_fuzzing(&z, plain, &hints));
    let original = z.clone();
    for pair in edits.chunks_exact(2) {
        if z.is_empty() {
            break;
        }
        let at = usize::from(pair[0]) * z.len() / 256;
        z[at] ^= pair[1];
    }
    let ok = bz2_encoder::check_for_fuzzing(&z, plain, &hints);
    if ok && z != original {
        // A different stream that decodes to the same bytes is possible (a flipped bit in
        // padding) but must then really decode to them: ask libbz2.
        let mut out = Vec::new();
        let decoded = bzip2::read::BzDecoder::new(&z[..]).read_to_end(&mut out);
        assert!(
            decoded.is_ok() && out == plain,
            "a damaged stream was accepted"
        );
    }
    // Cut short: never accepted.
    if z.len() > 4 {
        assert!(!bz2_encoder::check_for_fuzzing(
            &z[..z.len() - 1],
            plain,
            &hints
        ));
    }
}

/// A pack file: its trailer (and, where it decodes, every group it lists).
pub fn pack(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let path = dir.path().join("x.pack");
    if std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(data))
        .is_err()
    {
        return;
    }
    let _ = crate::store::fuzz_pack(&path);
}

/// A snapshot file whose name matches its content, and a metadata stream given as its one
/// metadata chunk: the header, metadata-chunk and end records, then the member records.
pub fn snapshot(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let _ = crate::store::fuzz_snapshot(dir.path(), data);
}

/// A backend configuration file (`/etc/opsi/backends/*.conf`) as the interpreter evaluates it.
pub fn backend_conf(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = pyconf::parse_conf(text, "fuzz.example.org", &|_| "127.0.0.1".into());
    }
}

/// The settings file `/etc/opsi/opsi-backup.toml`.
pub fn settings(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::settings::Settings::parse(text, std::path::Path::new("opsi-backup.toml"));
    }
}

/// A fuzz target: arbitrary bytes in, no panic out.
pub type Target = fn(&[u8]);

/// Every target by name, for the corpus replay.
/// An opsiconfd backup document as `import` splits it and `export` puts it back together:
/// whatever the split accepts must come back byte for byte; its meta is checked and its
/// objects read as `diff` reads them. (The AES layer is left out: its 200,000 PBKDF2 rounds
/// per input would leave no time for anything else.)
pub fn opsiconfd(data: &[u8]) {
    crate::opsiconfd::fuzz_document(data);
}

pub const TARGETS: &[(&str, Target)] = &[
    ("archive", archive),
    ("bz2_stream", bz2_stream),
    ("pack", pack),
    ("snapshot", snapshot),
    ("backend_conf", backend_conf),
    ("settings", settings),
    ("opsiconfd", opsiconfd),
];
