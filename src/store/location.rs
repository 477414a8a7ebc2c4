//! Where a repository lies: a local directory, or a prefix in a bucket of S3-compatible object
//! storage with a local directory for its index cache.

use std::fmt;
use std::path::PathBuf;

use crate::store::storage::{S3Address, S3Options};

/// A repository's place, as `--repository` names it.
// One or two per command: the size of the bigger variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Location {
    Local(PathBuf),
    S3 {
        address: S3Address,
        options: S3Options,
        /// The directory under which each remote repository keeps its index cache, in a
        /// folder named after the repository's id.
        cache_base: PathBuf,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::S3 { address, .. } => write!(f, "{address}"),
        }
    }
}
