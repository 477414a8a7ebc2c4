//! `opsiconfd backup` files (opsi 4.3): recognised by their first bytes, their layers undone
//! (`layers`: AES-256-GCM with a PBKDF2 key in `crypt`, an lz4 frame or gzip), their meta
//! checked (`meta`), and the msgpack or JSON document split, without re-encoding, into
//! streams that deduplicate from night to night (`split`, with the encodings' structural
//! scanners `msgpack` and `json`); `join` puts the streams back together byte for byte.
//! `objects` reads the decoded document in opsi terms for `diff`.
//!
//! Facts about the format come from opsiconfd's source (opsiconfd/backup.py,
//! opsiconfd/utils/cryptography.py); the format is also described in store-format/README.md,
//! section "Snapshot kinds", with the frame stream this module writes.

pub mod crypt;
mod fuzz_entry;
pub mod join;
pub mod json;
pub mod layers;
pub mod meta;
pub mod msgpack;
pub mod objects;
mod parts;

pub mod split;
mod varint;

#[doc(hidden)]
pub use fuzz_entry::fuzz_document;
pub use join::Joiner;
pub use layers::{Compression, Encoding, Layers};
pub use meta::Meta;
pub use split::{Split, Stream};

/// The member path prefix of an opsiconfd snapshot's streams; the frame comes first.
pub const FRAME_PATH: &str = "opsiconfd/frame";
