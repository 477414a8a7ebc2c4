//! File system primitives with the durability and permission rules of the spec (section
//! "Durability and permissions"): files are created 0600, directories 0700, and a file is
//! durable only after fsync of the file, rename, and fsync of the directory holding it.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{IoContext, Result};

/// Creates `path` (and missing parents) with mode 0700.
pub(crate) fn create_dir(path: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .path_ctx("creating directory", path)
}

/// Creates a new file, mode 0600, failing if it exists.
pub(crate) fn create_new(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .path_ctx("creating", path)
}

/// Opens a file for reading and writing, creating it 0600 if missing.
pub(crate) fn open_or_create(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .path_ctx("opening", path)
}

pub(crate) use crate::durable::sync_dir;

/// `N` bytes from the kernel's random source (ids of repositories and temporary files).
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .ctx("reading /dev/urandom")?;
    Ok(b)
}

/// A fresh name for a file under `tmp/`.
pub(crate) fn temp_name(prefix: &str) -> Result<String> {
    Ok(format!(
        "{prefix}-{}-{}.tmp",
        std::process::id(),
        hex::encode(random_bytes::<8>()?)
    ))
}
