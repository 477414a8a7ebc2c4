//! `Codec`: the compressors an archive is written with on every core, segment by segment
//! (`parallel.rs`), and whose segments the export cache keeps apart (`segment_cache.rs`).

/// A segment compressor: each segment becomes a complete bzip2 stream or gzip member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    Bz2,
    Gz,
}
