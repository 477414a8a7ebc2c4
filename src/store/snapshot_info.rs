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

/// What a snapshot holds. An opsiconfd snapshot is marked by its backends being exactly
/// `["opsiconfd"]` (format version 5, spec "Snapshot kinds"): no opsi-backup archive has a
/// backend of that name, and the index needs no new column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotKind {
    /// An opsi-backup archive's members.
    OpsiBackup,
    /// The streams of an `opsiconfd backup` file.
    Opsiconfd,
}

/// The backend name that marks an opsiconfd snapshot.
pub const OPSICONFD_BACKEND: &str = "opsiconfd";

impl SnapshotKind {
    /// The kind of a snapshot with these backends.
    pub fn of(backends: &[String]) -> SnapshotKind {
        if backends.len() == 1 && backends[0] == OPSICONFD_BACKEND {
            SnapshotKind::Opsiconfd
        } else {
            SnapshotKind::OpsiBackup
        }
    }

    /// The word `snapshots` shows.
    pub fn name(self) -> &'static str {
        match self {
            SnapshotKind::OpsiBackup => "opsi-backup",
            SnapshotKind::Opsiconfd => "opsiconfd",
        }
    }
}

impl SnapshotInfo {
    pub fn kind(&self) -> SnapshotKind {
        SnapshotKind::of(&self.backends)
    }

    /// Its place in the one order of snapshots by age; see [`recency`].
    pub fn recency(&self) -> (i64, i64, &str) {
        recency(self.time, self.written, &self.id)
    }
}

/// The view retention takes of a snapshot. The opsiconfd backups of a server are a series of
/// their own: `--keep-last 7` keeps seven of each kind, not seven of both together.
impl From<&SnapshotInfo> for Candidate {
    fn from(s: &SnapshotInfo) -> Candidate {
        let host = match s.kind() {
            SnapshotKind::OpsiBackup => s.host.clone(),
            SnapshotKind::Opsiconfd => format!("{} (opsiconfd)", s.host),
        };
        Candidate {
            id: s.id.clone(),
            time: s.time,
            written: s.written,
            host,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_sees_the_two_kinds_of_a_host_apart() {
        let info = |backends: &[&str]| SnapshotInfo {
            id: "ab".into(),
            time: 1,
            host: "server.example.org".into(),
            backends: backends.iter().map(|b| b.to_string()).collect(),
            size: 0,
            added: 0,
            members: 0,
            source: String::new(),
            sysinfo: Vec::new(),
            written: 0,
        };
        let archive = info(&["file", "mysql"]);
        let opsiconfd = info(&[OPSICONFD_BACKEND]);
        assert_eq!(archive.kind(), SnapshotKind::OpsiBackup);
        assert_eq!(opsiconfd.kind(), SnapshotKind::Opsiconfd);
        // "opsiconfd" among others is no opsiconfd snapshot.
        assert_eq!(
            info(&["file", "opsiconfd"]).kind(),
            SnapshotKind::OpsiBackup
        );
        let (a, b) = (Candidate::from(&archive), Candidate::from(&opsiconfd));
        assert_eq!(a.host, "server.example.org");
        assert_ne!(a.host, b.host);
    }
}
