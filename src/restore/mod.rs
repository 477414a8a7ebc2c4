//! Restore: members written back onto a server, verified before anything is touched and
//! swapped in only when complete (see `run.rs` for the flow). It reads a backup through
//! `backup::BackupSource` and knows neither archive files nor repositories: it imports no
//! `archive`, `store`, `source` or `cli` (ARCHITECTURE.md).

pub(crate) mod backup;
pub(crate) mod confine;
pub(crate) mod meta;
pub(crate) mod plan;
pub(crate) mod restorer;
pub(crate) mod run;
pub(crate) mod safe_path;
pub(crate) mod staging;
pub(crate) mod swap;
pub(crate) mod tree_links;
pub(crate) mod writers;
pub(crate) mod xattrs;

pub(crate) use backup::{BackupSource, Scope, Survey};
pub(crate) use plan::Request;
pub(crate) use run::{restore, Restored};
