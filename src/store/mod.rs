//! The deduplicating repository ("store"). The on-disk format is specified in
//! `store-format/README.md`; each module's header names its section.
//!
//! Format (what lies on disk): `config`, `pack`, `snapshot`, `index` (the only module that
//! speaks SQL); `snapshot_info` and `chunk_stream` are plain leaves they share.
//! Behaviour: `chunker`, `packer`, `snapshot_writer`, `reader`, `indexer` (a data file into
//! the index), `verify`, `rebuild`, `recovery`, `prune` (forget and prune), `repack` (prune's
//! copying), `group_costs` (what groups of a snapshot's members cost: `stats`' products), `lock`, `durable`, `last_verify` (the record `health` reads); `repository` ties
//! them together. `storage` is where the data files live (packs, snapshot files,
//! `config.json`, `state/`): every module reads and writes them through it, by key; the
//! index and the lock are local paths. `probe` is the read-only look of monitoring: no lock, no write.
//! `member_chunks` gives snapshots' members with their chunk lists, bytes unread (`diff`).
//! `parent` builds a parent snapshot (`crate::parent`) and reads its members back.
//! Encryption at rest: `seal` (keys, keyed chunk ids, sealed objects; no store imports) and
//! `keys` (key files, unlocking, the storage of an unlocked repository that carries the keys).

mod catch_up;
mod chunk_stream;
mod chunker;
mod config;
mod copy;
mod durable;
mod group_costs;
mod index;
mod indexer;
mod keys;
mod last_verify;
mod location;
mod lock;
mod lock_holder;
mod member_chunks;
mod object_lock;
mod pack;
mod pack_file;
mod pack_verified;
mod packer;
mod parent;
mod pending_uploads;
mod probe;
mod prune;
mod reader;
mod rebuild;
mod recovery;
mod remote;
mod remote_probe;
mod repack;
mod repository;
mod seal;
mod seal_queue;
mod snapshot;
mod snapshot_info;
mod snapshot_writer;
mod state;
mod storage;
mod verify;
mod verify_subset;

pub use config::{ChunkerParams, BULK_PREFIX, ENCRYPTED_VERSION, FORMAT_VERSION, LARGE_FILE};
pub use copy::Copied;
pub use group_costs::{GroupCost, GroupCosts};
pub use keys::{no_password, KeyInfo, PasswordSource, RepoPassword};
pub use location::Location;
pub use lock::{set_lock_wait, DEFAULT_LOCK_WAIT};
pub use member_chunks::{MemberChunks, MemberVisit, SameBytes};
pub(crate) use pending_uploads::note as pending_uploads_note;
pub(crate) use probe::{Probe, RemoteNotes};
pub use prune::{PruneOptions, PruneReport};
pub use rebuild::{LostMember, LostSnapshot, RebuildReport};
pub(crate) use remote_probe::probe_at;
pub use repository::Repository;
pub use snapshot::SnapshotMeta;
pub use snapshot_info::{
    recency, Series, SnapshotInfo, SnapshotKind, BULK_BACKENDS, OPSICONFD_BACKEND,
};
pub use snapshot_writer::SnapshotWriter;
pub use storage::{S3Address, S3Options};
mod fuzz_entry;
#[doc(hidden)]
pub use fuzz_entry::{fuzz_pack, fuzz_snapshot};
pub use verify::{
    DataSubset, NeededBy, Problem, Progress as VerifyProgress, VerifyOptions, VerifyReport,
    CONFIG_USER, META_USER, SNAPSHOT_FILE_USER, UNNAMED_USER,
};

// The store's modules name their crash points as `crate::store::crash_point`.
pub(crate) use crate::fail_points::crash_point;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_delta;
#[cfg(test)]
mod tests_trailer;
