//! The export cache: compressed segments of earlier exports, by the BLAKE3 of their plain
//! bytes, so that an export of tonight's snapshot splices last night's compressed segments
//! wherever the tar stream did not change instead of compressing them again. Segments are cut
//! where the content says (`parallel.rs`), so an unchanged stretch of the archive yields the
//! same segments night after night. Spec: `store-format/README.md`, section "Export cache".
//!
//! The cache is an optimisation only: an entry that is missing, torn or damaged is a miss and
//! is made again; failing to write one never fails the export. An entry is trusted because it
//! was checked (decompressed and compared) when it was made, and its own checksum proves that
//! these are still those bytes.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use crate::archive::codec::Codec;

/// First bytes of every entry; the version is the last byte.
const MAGIC: &[u8; 8] = b"OBKSEG\x00\x01";
/// Entries used by this run survive a sweep; this much slack covers file systems with coarse
/// timestamps.
const SLACK: Duration = Duration::from_secs(120);

pub(crate) struct SegmentCache {
    dir: PathBuf,
    started: SystemTime,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// How much of an export came from the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CacheStats {
    pub hits: u64,
    pub misses: u64,
}

impl SegmentCache {
    /// The cache for `codec` under a repository's root (`cache/segments/<codec>-9[-v3]`),
    /// created when missing.
    pub(crate) fn open(repository_root: &Path, codec: Codec) -> io::Result<SegmentCache> {
        let segments = repository_root.join("cache").join("segments");
        let name = match codec {
            Codec::Bz2 => {
                // libbz2's segments, from before our own compressor: splicing them would make
                // an archive's bytes depend on the cache's history. v2: cut with a smaller
                // minimum, so none of its segments would be hit again.
                let _ = fs::remove_dir_all(segments.join("bz2-9"));
                let _ = fs::remove_dir_all(segments.join("bz2-9-v2"));
                "bz2-9-v3"
            }
            Codec::Gz => "gz-9",
        };
        let dir = segments.join(name);
        private_dirs(&dir)?;
        Ok(SegmentCache {
            dir,
            started: SystemTime::now(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    fn path(&self, key: &blake3::Hash) -> PathBuf {
        let hex = key.to_hex();
        self.dir.join(&hex[..2]).join(hex.as_str())
    }

    /// The compressed segment whose plain bytes hash to `key`, if cached and intact. A hit is
    /// stamped with the current time so that the sweep keeps it.
    pub(crate) fn get(&self, key: &blake3::Hash) -> Option<Vec<u8>> {
        let found = read_entry(&self.path(key)).ok().flatten();
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Stores a checked compressed segment. Best effort: the export goes on without it.
    pub(crate) fn put(&self, key: &blake3::Hash, compressed: &[u8]) {
        let path = self.path(key);
        let write = || -> io::Result<()> {
            let dir = path.parent().expect("entry has a directory");
            private_dirs(dir)?;
            let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
            tmp.write_all(MAGIC)?;
            tmp.write_all(blake3::hash(compressed).as_bytes())?;
            tmp.write_all(compressed)?;
            // No fsync: a torn entry fails its checksum and is made again.
            tmp.persist(&path).map_err(|e| e.error)?;
            Ok(())
        };
        if let Err(e) = write() {
            crate::logging::info(format!(
                "export cache: cannot store {}: {e}",
                path.display()
            ));
        }
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// After a successful run: removes the entries this run did not use, so the cache holds
    /// one archive's segments (those of the last export). Returns the number removed.
    pub(crate) fn sweep(&self) -> io::Result<u64> {
        let cutoff = self.started - SLACK;
        let mut removed = 0;
        for sub in fs::read_dir(&self.dir)? {
            let sub = sub?;
            if !sub.file_type()?.is_dir() {
                continue;
            }
            for e in fs::read_dir(sub.path())? {
                let e = e?;
                let old = e.metadata()?.modified()? < cutoff;
                if old && fs::remove_file(e.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// Like the rest of the repository, which holds passwords and keys: 0700.
fn private_dirs(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// An entry's payload, or `None` when it is missing or does not match its checksum. An intact
/// entry is stamped with the current time (through the same open file) so the sweep keeps it.
fn read_entry(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    f.read_to_end(&mut bytes)?;
    if bytes.len() < MAGIC.len() + 32 || &bytes[..MAGIC.len()] != MAGIC {
        return Ok(None);
    }
    let (sum, payload) = bytes[MAGIC.len()..].split_at(32);
    if blake3::hash(payload).as_bytes() != sum {
        return Ok(None);
    }
    let _ = f.set_modified(SystemTime::now());
    Ok(Some(payload.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_comes_back_and_a_damaged_one_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let c = SegmentCache::open(dir.path(), Codec::Bz2).unwrap();
        let key = blake3::hash(b"plain");
        assert_eq!(c.get(&key), None);
        c.put(&key, b"compressed bytes");
        assert_eq!(c.get(&key).as_deref(), Some(&b"compressed bytes"[..]));
        let path = c.path(&key);
        let mut b = fs::read(&path).unwrap();
        let last = b.len() - 1;
        b[last] ^= 1;
        fs::write(&path, b).unwrap();
        assert_eq!(c.get(&key), None);
        assert_eq!(c.stats(), CacheStats { hits: 1, misses: 2 });
    }

    #[test]
    fn sweep_keeps_what_this_run_used() {
        let dir = tempfile::tempdir().unwrap();
        let c = SegmentCache::open(dir.path(), Codec::Gz).unwrap();
        let (old, used) = (blake3::hash(b"old"), blake3::hash(b"used"));
        c.put(&old, b"o");
        c.put(&used, b"u");
        let yesterday = SystemTime::now() - Duration::from_secs(86400);
        for k in [&old, &used] {
            let f = File::options().write(true).open(c.path(k)).unwrap();
            f.set_modified(yesterday).unwrap();
        }
        assert!(c.get(&used).is_some());
        assert_eq!(c.sweep().unwrap(), 1);
        assert!(c.get(&old).is_none());
        assert!(c.get(&used).is_some());
    }
}
