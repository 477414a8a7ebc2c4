//! `SnapshotInfo`: a committed snapshot as the index lists it, and the one order of
//! snapshots by age. A plain record: it imports nothing of the store; the order itself is retention's.

use serde::{Deserialize, Serialize};

pub use crate::retention::recency;
use crate::retention::Candidate;

/// A committed snapshot as listed by the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// 64 hex digits: BLAKE3 of the snapshot file. Any unique prefix names it.
    pub id: String,
    pub time: i64,
    pub host: String,
    pub backends: Vec<String>,
    /// Logical bytes of file contents.
    pub size: u64,
    /// Bytes this snapshot added to the repository on disk (new packs and its own file).
    pub added: u64,
    pub members: u64,
    pub source: String,
    pub sysinfo: Vec<(String, String)>,
    /// When its file was finished, Unix nanoseconds (the end record's `written`).
    #[serde(default)]
    pub written: i64,
}

impl SnapshotInfo {
    /// Its place in the one order of snapshots by age; see [`recency`].
    pub fn recency(&self) -> (i64, i64, &str) {
        recency(self.time, self.written, &self.id)
    }
}

/// The view retention takes of a snapshot.
impl From<&SnapshotInfo> for Candidate {
    fn from(s: &SnapshotInfo) -> Candidate {
        Candidate {
            id: s.id.clone(),
            time: s.time,
            written: s.written,
            host: s.host.clone(),
        }
    }
}
