//! How a repository computes chunk ids: plain BLAKE3 of the chunk, or, in an encrypted
//! repository, BLAKE3 keyed with a key derived from its master key, so that an id says
//! nothing about the content to whoever lacks the key (a known file's plain BLAKE3 does not
//! reveal that the repository holds it). Spec: "Chunking", "Encryption".

use std::sync::Arc;

use zeroize::Zeroizing;

/// Every computation or check of a chunk id goes through this value, taken from the
/// repository (`Storage::crypt().ids()`), never from a global.
#[derive(Clone)]
pub(crate) enum ChunkIds {
    Plain,
    Keyed(Arc<Zeroizing<[u8; 32]>>),
}

impl ChunkIds {
    pub(crate) fn keyed(key: [u8; 32]) -> ChunkIds {
        ChunkIds::Keyed(Arc::new(Zeroizing::new(key)))
    }

    /// The id of a chunk of plain bytes `data`.
    pub(crate) fn id(&self, data: &[u8]) -> [u8; 32] {
        match self {
            ChunkIds::Plain => *blake3::hash(data).as_bytes(),
            ChunkIds::Keyed(k) => *blake3::keyed_hash(k, data).as_bytes(),
        }
    }

    /// Whether two repositories give every chunk the same id (both plain, or the same key):
    /// then `copy` may take chunk lists as they are.
    pub(crate) fn same_as(&self, other: &ChunkIds) -> bool {
        match (self, other) {
            (ChunkIds::Plain, ChunkIds::Plain) => true,
            (ChunkIds::Keyed(a), ChunkIds::Keyed(b)) => a[..] == b[..],
            _ => false,
        }
    }
}

impl std::fmt::Debug for ChunkIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChunkIds::Plain => "ChunkIds::Plain",
            ChunkIds::Keyed(_) => "ChunkIds::Keyed(..)",
        })
    }
}
