//! The JSON documents of `--json`, one place for all of them, as `docs/json.md` specifies:
//! every command that reports writes exactly one document on stdout, and a snapshot or a
//! member looks the same in all of them. Times are Unix seconds (`time`) with an RFC 3339
//! twin in UTC (`time_rfc3339`); snapshots carry their `short_id` (the id as people see it).
//! Every document that is an object names its `schema` ("opsi-backup/<command>/<version>");
//! `snapshots` prints a bare array of snapshot objects, as it always has.

use serde::Serialize;

use crate::cli::human;
use crate::diff::Diff;
use crate::member::{Member, MemberKind};
use crate::retention::Decision;
use crate::store::{PruneReport, SnapshotInfo};

/// The version of every document below; bumped when a field changes meaning or type
/// (adding fields does not bump it).
const VERSION: u32 = 1;

/// `opsi-backup/<command>/1`.
pub(super) fn schema(command: &str) -> String {
    format!("opsi-backup/{command}/{VERSION}")
}

/// Writes the one document of a command on stdout (printed even with `-q`).
pub(super) fn print(doc: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(doc)?);
    Ok(())
}

/// Unix seconds as RFC 3339 in UTC (`2026-12-06T18:55:31Z`).
pub(super) fn rfc3339(secs: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp(secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A snapshot, wherever a document names one: the index's record as the store serializes it,
/// plus the short id and the time in RFC 3339.
#[derive(Serialize)]
pub(super) struct Snapshot {
    #[serde(flatten)]
    pub info: SnapshotInfo,
    pub short_id: String,
    pub time_rfc3339: String,
    /// `opsi-backup` or `opsiconfd`.
    pub kind: &'static str,
}

impl From<&SnapshotInfo> for Snapshot {
    fn from(s: &SnapshotInfo) -> Self {
        Snapshot {
            info: s.clone(),
            short_id: human::short(&s.id).to_string(),
            time_rfc3339: rfc3339(s.time),
            kind: s.kind().name(),
        }
    }
}

/// One member of an archive or snapshot (`list --long`).
#[derive(Serialize)]
pub(super) struct MemberEntry {
    pub path: String,
    /// `file`, `dir`, `symlink`, `hardlink` or `other`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_target: Option<String>,
    pub mode: u32,
    pub uname: String,
    pub gname: String,
    pub size: u64,
    pub mtime: i64,
    pub mtime_rfc3339: String,
    /// Bulk data's extended attributes, by name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<String>,
}

impl From<&Member> for MemberEntry {
    fn from(m: &Member) -> Self {
        let (kind, link_target) = match &m.kind {
            MemberKind::File => ("file", None),
            MemberKind::Dir => ("dir", None),
            MemberKind::Symlink(t) => ("symlink", Some(t.clone())),
            MemberKind::Hardlink(t) => ("hardlink", Some(t.clone())),
            MemberKind::Other(_) => ("other", None),
        };
        MemberEntry {
            path: m.path.clone(),
            kind,
            link_target,
            mode: m.mode,
            uname: m.uname.clone(),
            gname: m.gname.clone(),
            size: m.size,
            mtime: m.mtime.secs,
            mtime_rfc3339: rfc3339(m.mtime.secs),
            xattrs: m.xattrs.iter().map(|x| x.name.clone()).collect(),
        }
    }
}

/// `create --json`.
#[derive(Serialize)]
pub(super) struct Create {
    pub schema: String,
    /// The snapshot saved (with a repository).
    pub snapshot: Option<Snapshot>,
    /// Files not read again thanks to the parent snapshot (with a repository and a parent).
    pub unchanged_files: Option<u64>,
    /// The archive file written (without a repository, or with DEST).
    pub archive: Option<String>,
}

/// One archive or snapshot of `list --json`.
#[derive(Serialize)]
pub(super) struct Listed {
    /// The archive file (absolute), for an archive.
    pub archive: Option<String>,
    /// The snapshot, for a snapshot.
    pub snapshot: Option<Snapshot>,
    /// The parts it contains, as `list` names them.
    pub contains: Vec<String>,
    /// With `--long`: every member.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<MemberEntry>>,
}

/// `list --json`.
#[derive(Serialize)]
pub(super) struct List {
    pub schema: String,
    pub items: Vec<Listed>,
}

/// One archive or snapshot checked by `verify --json`.
#[derive(Serialize)]
pub(super) struct Verified {
    /// The archive file, for an archive.
    pub archive: Option<String>,
    /// The snapshot, when one snapshot was verified.
    pub snapshot: Option<Snapshot>,
    pub ok: bool,
    pub problems: Vec<String>,
}

/// What a verify of the repository counted.
#[derive(Serialize)]
pub(super) struct RepositoryChecked {
    pub snapshots: u64,
    pub packs: u64,
    pub chunks: u64,
    pub bytes: u64,
    /// Packs whose data a rolling verify left for another night (0 for a full verify).
    pub packs_skipped: u64,
    pub notes: Vec<String>,
}

/// `verify --json`.
#[derive(Serialize)]
pub(super) struct Verify {
    pub schema: String,
    /// True when everything checked is intact (the exit code says the same).
    pub ok: bool,
    pub items: Vec<Verified>,
    /// With a repository: what was checked.
    pub repository: Option<RepositoryChecked>,
}

/// `export --json`.
#[derive(Serialize)]
pub(super) struct Export {
    pub schema: String,
    pub snapshot: Snapshot,
    pub archive: String,
}

/// One archive of `import --json`.
#[derive(Serialize)]
pub(super) struct Imported {
    pub archive: String,
    pub snapshot: Snapshot,
}

/// `import --json`.
#[derive(Serialize)]
pub(super) struct Import {
    pub schema: String,
    pub imported: Vec<Imported>,
}

/// A snapshot `copy` wrote.
#[derive(Serialize)]
pub(super) struct Copied {
    /// The snapshot in the source repository.
    pub from: Snapshot,
    /// The new snapshot in the repository copied into.
    pub to: Snapshot,
    /// Chunks (and their plain bytes) the target lacked and took from the source.
    pub chunks_sent: u64,
    pub bytes_sent: u64,
}

/// A snapshot `copy` left, as the target has it already.
#[derive(Serialize)]
pub(super) struct CopySkipped {
    pub from: Snapshot,
    /// The id of the target's snapshot that is its copy (or itself).
    pub existing: String,
}

/// `copy --json`.
#[derive(Serialize)]
pub(super) struct Copy {
    pub schema: String,
    pub copied: Vec<Copied>,
    pub skipped: Vec<CopySkipped>,
}

/// One part restored.
#[derive(Serialize)]
pub(super) struct RestoredPart {
    /// The archive prefix restored (`CONTENT/BACKENDS/FILE/`).
    pub prefix: String,
    /// Where it went and what decided that.
    pub destination: String,
}

/// `restore --json`.
#[derive(Serialize)]
pub(super) struct Restore {
    pub schema: String,
    /// The archive file restored from.
    pub archive: Option<String>,
    /// The snapshot restored from.
    pub snapshot: Option<Snapshot>,
    pub restored: Vec<RestoredPart>,
    /// `--new-server-id`, when the config server was renamed.
    pub new_server_id: Option<String>,
}

/// One snapshot as `forget` decided.
#[derive(Serialize)]
pub(super) struct ForgetDecision {
    pub id: String,
    pub short_id: String,
    pub time: i64,
    pub time_rfc3339: String,
    pub host: String,
    pub keep: bool,
    pub reasons: Vec<String>,
}

impl ForgetDecision {
    /// A snapshot named on the command line: removed, no policy's reasons.
    pub(super) fn named(s: &SnapshotInfo) -> Self {
        ForgetDecision {
            id: s.id.clone(),
            short_id: human::short(&s.id).to_string(),
            time: s.time,
            time_rfc3339: rfc3339(s.time),
            host: s.host.clone(),
            keep: false,
            reasons: Vec::new(),
        }
    }
}

impl From<&Decision> for ForgetDecision {
    fn from(d: &Decision) -> Self {
        ForgetDecision {
            id: d.id.clone(),
            short_id: human::short(&d.id).to_string(),
            time: d.time,
            time_rfc3339: rfc3339(d.time),
            host: d.host.clone(),
            keep: d.keep,
            reasons: d.reasons.clone(),
        }
    }
}

/// `forget --json`.
#[derive(Serialize)]
pub(super) struct Forget {
    pub schema: String,
    pub dry_run: bool,
    /// Every snapshot considered: those named are all `keep: false`.
    pub decisions: Vec<ForgetDecision>,
    /// Snapshots removed (0 in a dry run).
    pub removed: u64,
    /// A dry run of a policy: why the real run would refuse, if it would.
    pub refused: Option<String>,
    /// With `--prune`: prune's report (as `prune --json` without its schema).
    pub prune: Option<PruneReport>,
}

/// `prune --json`: the report's fields at the top level.
#[derive(Serialize)]
pub(super) struct Prune<'a> {
    pub schema: String,
    #[serde(flatten)]
    pub report: &'a PruneReport,
}

/// `diff --json`: the changes at the top level.
#[derive(Serialize)]
pub(super) struct DiffDoc<'a> {
    pub schema: String,
    #[serde(flatten)]
    pub diff: &'a Diff,
}

/// `diff --json` of two opsiconfd snapshots.
#[derive(Serialize)]
pub(super) struct OpsiconfdDiffDoc<'a> {
    pub schema: String,
    pub kind: &'static str,
    #[serde(flatten)]
    pub diff: &'a crate::opsiconfd::objects::ObjectsDiff,
}

/// `stats --json`.
#[derive(Serialize)]
pub(super) struct Stats {
    pub schema: String,
    pub snapshots: usize,
    pub disk_bytes: u64,
    pub export_cache_bytes: u64,
    pub logical_bytes: u64,
    pub dedup_ratio: f64,
    pub per_snapshot: Vec<Snapshot>,
    /// With `stats SNAPSHOT`: what its bulk data costs per product.
    pub bulk_data: Option<BulkCosts>,
}

/// `stats SNAPSHOT --json`: a snapshot's bulk data per product.
#[derive(Serialize)]
pub(super) struct BulkCosts {
    pub snapshot: Snapshot,
    pub products: Vec<ProductCost>,
    /// Stored bytes of chunks that several products use, each counted once.
    pub shared_bytes: u64,
    /// All the bulk data's chunks: the products' own bytes plus `shared_bytes`.
    pub stored_bytes: u64,
}

/// One product (or package, or the TFTP files) of a snapshot's bulk data.
#[derive(Serialize)]
pub(super) struct ProductCost {
    /// `depot`, `workbench`, `repository` or `tftp`.
    pub part: String,
    /// The first directory level below the part (null for TFTP and the part's top directory).
    pub product: Option<String>,
    pub files: u64,
    pub size: u64,
    pub own_bytes: u64,
    pub shared_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_582_131), "2026-12-06T18:35:31Z");
        assert_eq!(schema("list"), "opsi-backup/list/1");
    }
}
