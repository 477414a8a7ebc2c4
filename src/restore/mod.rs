//! Restore: members written back onto a server, verified before anything is touched and
//! swapped in only when complete (see `run.rs` for the flow). It reads a backup through
//! `backup::BackupSource` and knows neither archive files nor repositories: it imports no
//! `archive`, `store`, `source` or `cli` (ARCHITECTURE.md).

pub mod backup;
pub mod confine;
pub mod plan;
pub mod restorer;
pub mod run;
pub mod safe_path;
pub mod staging;
pub mod swap;
pub mod tree_links;

pub use backup::{BackupSource, Survey};
pub use plan::Request;
pub use run::restore;
