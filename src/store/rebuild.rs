//! Rebuilding the SQLite index from the pack trailers and snapshot files alone. Spec:
//! `store-format/README.md`, section "Rebuilding the index".

use std::fs;
use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};
use serde::Serialize;

use crate::error::{IoContext, Result};
use crate::store::index::{self, SqlContext};
use crate::store::lock::RepoLock;

/// What `Repository::rebuild_index` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RebuildReport {
    pub packs: u64,
    pub snapshots: u64,
    /// Packs and snapshot files that could not be indexed, with the reason. A snapshot is
    /// skipped when one of its chunks is in no readable pack.
    pub skipped: Vec<String>,
}

/// Empties the index and fills it from the data files, in one transaction. The caller holds
/// the exclusive lock.
pub(crate) fn rebuild(
    root: &Path,
    conn: &mut Connection,
    _lock: &RepoLock,
) -> Result<RebuildReport> {
    let mut report = RebuildReport::default();
    let mut tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .sql()?;
    tx.execute_batch("DELETE FROM members; DELETE FROM snapshots; DELETE FROM chunks; DELETE FROM group_refs; DELETE FROM groups; DELETE FROM packs;").sql()?;
    for name in list_packs(root)? {
        match index::index_pack_file(&tx, root, &name) {
            Ok(_) => report.packs += 1,
            Err(e) => report.skipped.push(format!("pack {name}: {e}")),
        }
    }
    for id in list_snapshots(root)? {
        let sp = tx.savepoint().sql()?;
        match index::index_snapshot_file(&sp, root, &id) {
            Ok(()) => {
                sp.commit().sql()?;
                report.snapshots += 1;
            }
            Err(e) => report.skipped.push(format!("snapshot {id}: {e}")),
        }
    }
    tx.commit().sql()?;
    Ok(report)
}

fn is_hex_name(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Names of the pack files under `packs/`, sorted.
pub(crate) fn list_packs(root: &Path) -> Result<Vec<String>> {
    let dir = root.join("packs");
    let mut names = Vec::new();
    for sub in fs::read_dir(&dir).path_ctx("listing", &dir)? {
        let sub = sub.path_ctx("listing", &dir)?.path();
        if !sub.is_dir() {
            continue;
        }
        for f in fs::read_dir(&sub).path_ctx("listing", &sub)? {
            let f = f.path_ctx("listing", &sub)?.file_name();
            if let Some(name) = f
                .to_str()
                .and_then(|n| n.strip_suffix(".pack"))
                .filter(|n| is_hex_name(n))
            {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// Ids of the snapshot files under `snapshots/`, sorted.
pub(crate) fn list_snapshots(root: &Path) -> Result<Vec<String>> {
    let dir = root.join("snapshots");
    let mut names = Vec::new();
    for f in fs::read_dir(&dir).path_ctx("listing", &dir)? {
        let f = f.path_ctx("listing", &dir)?.file_name();
        if let Some(id) = f
            .to_str()
            .and_then(|n| n.strip_suffix(".snap"))
            .filter(|n| is_hex_name(n))
        {
            names.push(id.to_string());
        }
    }
    names.sort();
    Ok(names)
}
