//! The deduplicating repository ("store"). The on-disk format is specified in
//! `store-format/README.md`; each module's header names its section.
//!
//! Format (what lies on disk): `config`, `pack`, `snapshot`, `index`.
//! Behaviour: `chunker`, `packer`, `snapshot_writer`, `reader`, `verify`, `rebuild`,
//! `recovery`, `prune` (forget and prune), `repack` (prune's copying), `lock`, `durable`; `repository` ties them together.
//! `parent` builds a parent snapshot (`crate::parent`) and reads its members back.

mod chunker;
mod config;
mod durable;
mod index;
mod lock;
mod pack;
mod packer;
mod parent;
mod prune;
mod reader;
mod rebuild;
mod recovery;
mod repack;
mod repository;
mod snapshot;
mod snapshot_writer;
mod verify;

pub use config::{ChunkerParams, FORMAT_VERSION};
pub use lock::{set_lock_wait, DEFAULT_LOCK_WAIT};
pub use prune::{PruneOptions, PruneReport};
pub use rebuild::{LostMember, LostSnapshot, RebuildReport};
pub use repository::Repository;
pub use snapshot::{recency, SnapshotInfo, SnapshotMeta};
pub use snapshot_writer::SnapshotWriter;
mod fuzz_entry;
#[doc(hidden)]
pub use fuzz_entry::{fuzz_pack, fuzz_snapshot};
pub use verify::{
    NeededBy, Problem, VerifyReport, CONFIG_USER, META_USER, SNAPSHOT_FILE_USER, UNNAMED_USER,
};

/// Environment variable naming the crash point at which the process aborts (tests only).
pub const CRASH_ENV: &str = "OPSI_BACKUP_CRASH_AT";

/// Aborts the process (as kill -9 would end it) when `OPSI_BACKUP_CRASH_AT` equals `name`.
/// The names and where they lie are listed in the spec, section "Crash points".
pub(crate) fn crash_point(name: &str) {
    static AT: std::sync::OnceLock<Option<std::ffi::OsString>> = std::sync::OnceLock::new();
    if AT
        .get_or_init(|| std::env::var_os(CRASH_ENV))
        .as_deref()
        .is_some_and(|v| v == name)
    {
        std::process::abort();
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_delta;
#[cfg(test)]
mod tests_trailer;
