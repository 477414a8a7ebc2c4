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

/// The backends that hold a server's bulk data (`layout::DataPart`'s names; a test in
/// `cli/create.rs` checks that the two agree).
pub const BULK_BACKENDS: [&str; 4] = ["depot", "workbench", "repository", "tftp"];

/// The snapshots of a host that follow each other: the parent of a new snapshot is the newest
/// of its series, and retention keeps its counts per series. A series is the kind and the
/// bulk data backends a snapshot holds: a nightly `create` of the configuration and another
/// of the depot are two series, so that neither takes the other as its parent (the depot's
/// files would all be read again) and `--keep-last 7` cannot remove the depot's last backup
/// because seven configuration backups came after it. Snapshots without bulk data form one
/// series per kind, as before bulk data existed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    kind: SnapshotKind,
    /// Sorted, without duplicates.
    bulk: Vec<String>,
}

impl Series {
    /// The series of a snapshot with these backends.
    pub fn of(backends: &[String]) -> Series {
        let mut bulk: Vec<String> = backends
            .iter()
            .filter(|b| BULK_BACKENDS.contains(&b.as_str()))
            .cloned()
            .collect();
        bulk.sort();
        bulk.dedup();
        Series {
            kind: SnapshotKind::of(backends),
            bulk,
        }
    }

    pub fn kind(&self) -> SnapshotKind {
        self.kind
    }

    /// How retention names the series of `host`: the host alone for the opsi-backup
    /// snapshots without bulk data, else with what sets the series apart.
    pub fn label(&self, host: &str) -> String {
        let mut tags = Vec::new();
        if self.kind == SnapshotKind::Opsiconfd {
            tags.push(OPSICONFD_BACKEND.to_string());
        }
        if !self.bulk.is_empty() {
            tags.push(self.bulk.join(","));
        }
        if tags.is_empty() {
            host.to_string()
        } else {
            format!("{host} ({})", tags.join("; "))
        }
    }
}

impl SnapshotInfo {
    pub fn kind(&self) -> SnapshotKind {
        SnapshotKind::of(&self.backends)
    }

    /// The series it belongs to within its host.
    pub fn series(&self) -> Series {
        Series::of(&self.backends)
    }

    /// Its place in the one order of snapshots by age; see [`recency`].
    pub fn recency(&self) -> (i64, i64, &str) {
        recency(self.time, self.written, &self.id)
    }
}

/// The view retention takes of a snapshot: its counts apply per series (`Series`). The
/// opsiconfd backups of a server are a series of their own, and so is each set of bulk data
/// backends: `--keep-last 7` keeps seven of each.
impl From<&SnapshotInfo> for Candidate {
    fn from(s: &SnapshotInfo) -> Candidate {
        Candidate {
            id: s.id.clone(),
            time: s.time,
            written: s.written,
            host: s.series().label(&s.host),
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

        // Each set of bulk data backends is a series of its own, whatever else it holds;
        // without bulk data the series is the kind's, as it always was.
        let depot = info(&["configuration", "depot", "file"]);
        assert_eq!(depot.series(), info(&["depot"]).series());
        assert_ne!(depot.series(), archive.series());
        assert_ne!(depot.series(), info(&["depot", "tftp"]).series());
        assert_eq!(archive.series(), info(&["configuration", "dhcp"]).series());
        assert_eq!(
            Candidate::from(&info(&["tftp", "file", "depot"])).host,
            "server.example.org (depot,tftp)"
        );
    }
}
