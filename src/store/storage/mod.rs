//! Where the repository's data files live: packs, snapshot files, `config.json` and the
//! `state/` records, named by keys. Everything of `store/` reads and writes them through
//! `Storage`; only the index (`index.sqlite`, a local cache of what the data files say) and
//! the lock (`lock`, `locks/`) stay local paths. `LocalDir` is the repository directory of
//! the spec; object storage is the next implementation. Spec: `store-format/README.md`,
//! section "Storage".
//!
//! Keys are relative names with `/` between their parts: `packs/<xx>/<name>.pack`,
//! `snapshots/<id>.snap`, `config.json`, `state/<name>`, and an encrypted repository's key
//! files `keys/<id>.json` (each written once, with `replace`, under a new random id).
//!
//! The durability contract, which every implementation keeps:
//!
//! - `put_new` publishes a whole object or nothing: a reader, also after a crash at any
//!   moment, finds the key absent or holding every byte it was given. When it returns, the
//!   object is durable (survives a power loss). Keys given to it name their content (a pack's
//!   or snapshot file's BLAKE3), so a key that exists already holds the same bytes: publishing
//!   it again is no error and leaves the key whole.
//! - `replace` is `put_new` for the few keys whose content changes (`config.json`,
//!   `state/…`): a reader finds the old or the new bytes, never a mix, and the new ones are
//!   durable on return.
//! - `remove` takes a key away; it is durable only after `flush_removals` of its prefix has
//!   returned (removals are batched: prune removes many packs, then flushes once per
//!   directory). A crash before that may bring a removed key back, whole.
//! - `list` may miss a key published just before on an eventually consistent store; callers
//!   rely only on what the index says was committed, and list to find what it lacks.
//! - Nothing above this interface calls fsync on a repository path.
//! - `pending_uploads` lists uploads begun and never finished (object storage's multipart
//!   uploads of a killed writer): never visible as keys, but they hold space until
//!   `abort_upload`. A local directory has none (its temporary files are `clean_temp`'s).

mod local;
mod s3;
mod s3_address;
mod s3_client;
mod s3_tails;

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::SystemTime;

use crate::error::Result;
use crate::store::seal::{Crypt, PLAIN};

pub(crate) use local::{LocalDir, LocalObject};
pub(crate) use s3::S3Storage;
pub use s3_address::{S3Address, S3Options};

/// The key of pack `name` (hex BLAKE3 of the file).
pub(crate) fn pack_key(name: &str) -> String {
    format!("packs/{}/{name}.pack", &name[..2])
}

/// The key of snapshot file `id` (hex BLAKE3 of the file).
pub(crate) fn snapshot_key(id: &str) -> String {
    format!("snapshots/{id}.snap")
}

/// The repository's `config.json`.
pub(crate) const CONFIG_KEY: &str = "config.json";

/// The key of state record `name`.
pub(crate) fn state_key(name: &str) -> String {
    format!("state/{name}")
}

/// A local file being filled before it is published with `put_new` (a pack, a snapshot
/// file). Dropped without publishing, it stays for recovery (`clean_temp`) to delete.
pub(crate) struct TempFile {
    pub path: PathBuf,
    pub file: File,
}

impl TempFile {
    /// Deletes the file (best effort: recovery deletes what stays).
    pub(crate) fn discard(self) {
        drop(self.file);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What `stat` says of an object.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ObjectInfo {
    // Nothing needs it yet without reading the object; `stat` is the place to tell it.
    #[allow(dead_code)]
    pub size: u64,
    pub modified: Option<SystemTime>,
}

/// An upload begun and neither completed nor aborted: an S3 multipart upload. Its parts are
/// stored (and billed) but no key shows them.
#[derive(Debug, Clone)]
pub(crate) struct PendingUpload {
    /// The key it was to publish.
    pub key: String,
    /// The storage's name for the upload.
    pub upload_id: String,
    /// When it began, by the storage's clock (`None` when the answer did not say).
    pub initiated: Option<SystemTime>,
}

/// An object opened for reading: its size is fixed when opened (objects are written once),
/// and reads at any offset need no seek, so several readers may share one.
pub(crate) trait Object: Send + Sync {
    fn size(&self) -> u64;

    /// Reads up to `buf.len()` bytes at `offset`; 0 at the end.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Fills `buf` from `offset`, or fails with `UnexpectedEof`.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The repository's data files, by key. Object-safe; shared as `Arc<dyn Storage>`.
pub(crate) trait Storage: Send + Sync {
    /// How `key` is named in messages (a local path, an object URL).
    fn show(&self, key: &str) -> String;

    /// A new local file to fill and then `put_new`, its name taken from `prefix`.
    fn create_temp(&self, prefix: &str) -> Result<TempFile>;

    /// Publishes the finished `tmp` as `key`: whole or not at all, durable on return (see the
    /// module's contract). `crash` names the crash point passed once the bytes are durable
    /// but not yet published (`<crash>-synced`, spec section "Crash points").
    fn put_new(&self, key: &str, tmp: TempFile, crash: &str) -> Result<()>;

    /// Writes `key` as `bytes`, replacing what it held: old or new, never a mix; durable on
    /// return.
    fn replace(&self, key: &str, bytes: &[u8]) -> Result<()>;

    /// Opens `key` for ranged reads. `NotFound` when it does not exist.
    fn open(&self, key: &str) -> io::Result<Box<dyn Object>>;

    /// Size and time of `key`; `None` when it does not exist.
    fn stat(&self, key: &str) -> io::Result<Option<ObjectInfo>>;

    /// Every key below `prefix` (a folder: ends with `/`), at any depth, sorted. A prefix with
    /// nothing below it gives an empty list.
    fn list(&self, prefix: &str) -> Result<Vec<String>>;

    /// Takes `key` away; returns whether it was there. Durable after `flush_removals`.
    fn remove(&self, key: &str) -> Result<bool>;

    /// Makes the removals of keys below `prefix` (a folder) durable.
    fn flush_removals(&self, prefix: &str) -> Result<()>;

    /// Deletes what interrupted writers left of their temporary files (`create_temp`); the
    /// caller holds the exclusive lock. Returns how many were deleted.
    fn clean_temp(&self) -> Result<u64>;

    /// The uploads below the repository's keys that were begun and never finished (see
    /// `PendingUpload`). None for storage that publishes by rename.
    fn pending_uploads(&self) -> Result<Vec<PendingUpload>> {
        Ok(Vec::new())
    }

    /// Aborts `upload`, freeing its parts. The caller makes sure its writer is gone.
    fn abort_upload(&self, _upload: &PendingUpload) -> Result<()> {
        Ok(())
    }

    /// The keys the data files are sealed with and chunk ids computed with: none for a plain
    /// repository. Only the storage of an unlocked encrypted repository (`keys::Unlocked`,
    /// which wraps `LocalDir` or `S3Storage`) has keys; the implementations themselves move
    /// bytes and know nothing of them.
    fn crypt(&self) -> &Crypt {
        &PLAIN
    }

    /// Whether `key` exists.
    fn exists(&self, key: &str) -> io::Result<bool> {
        self.stat(key).map(|s| s.is_some())
    }

    /// The bytes of `key`, at most `limit` of them (`InvalidData` when it holds more);
    /// `None` when it does not exist.
    fn read_small(&self, key: &str, limit: u64) -> io::Result<Option<Vec<u8>>> {
        let obj = match self.open(key) {
            Ok(o) => o,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if obj.size() > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} bytes, more than the {limit} expected", obj.size()),
            ));
        }
        let mut bytes = vec![0u8; obj.size() as usize];
        obj.read_exact_at(&mut bytes, 0)?;
        Ok(Some(bytes))
    }
}

/// An object read front to back (`Read`, `Seek`), for the readers that stream: wrap it in a
/// `BufReader`.
pub(crate) struct ObjectReader<'o> {
    obj: &'o dyn Object,
    pos: u64,
}

impl ObjectReader<'_> {
    pub(crate) fn new(obj: &dyn Object) -> ObjectReader<'_> {
        ObjectReader { obj, pos: 0 }
    }
}

impl Read for ObjectReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.obj.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for ObjectReader<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let at = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.obj.size().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos =
            at.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}
