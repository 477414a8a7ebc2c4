//! Cleaning up after interrupted writers. Runs only under the exclusive lock (tried without
//! waiting when a repository is opened). Spec: `store-format/README.md`, section "What a
//! crash leaves behind".

use std::fs;
use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{IoContext, Result};
use crate::store::index::{self, SqlContext};
use crate::store::lock::RepoLock;
use crate::store::rebuild::{list_packs, list_snapshots};

/// What a recovery run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RecoveryReport {
    /// Temporary files (unfinished packs and snapshot files) deleted.
    pub tmp_removed: u64,
    /// Finished packs no snapshot had committed yet, now indexed so later snapshots reuse them.
    pub packs_reused: u64,
    /// Snapshot files whose commit was interrupted after the file was durable, now indexed.
    pub snapshots_completed: u64,
    /// Files under packs/ or snapshots/ that cannot be indexed (damaged); left in place.
    pub unreadable: Vec<String>,
}

/// Deletes `tmp/*`, indexes finished packs and snapshot files the index does not know. The
/// caller holds the exclusive lock (`_lock` proves it).
pub(crate) fn recover(
    root: &Path,
    conn: &mut Connection,
    _lock: &RepoLock,
) -> Result<RecoveryReport> {
    let mut report = RecoveryReport::default();
    let tmp = root.join("tmp");
    for entry in fs::read_dir(&tmp).path_ctx("listing", &tmp)? {
        let path = entry.path_ctx("listing", &tmp)?.path();
        fs::remove_file(&path).path_ctx("removing leftover", &path)?;
        report.tmp_removed += 1;
    }
    let mut tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .sql()?;
    for name in list_packs(root)? {
        if index::pack_known(&tx, &name)? {
            continue;
        }
        let sp = tx.savepoint().sql()?;
        match index::index_pack_file(&sp, root, &name) {
            Ok(_) => {
                sp.commit().sql()?;
                report.packs_reused += 1;
            }
            Err(e) => report.unreadable.push(format!("pack {name}: {e}")),
        }
    }
    for id in list_snapshots(root)? {
        if index::snapshot_known(&tx, &id)? {
            continue;
        }
        let sp = tx.savepoint().sql()?;
        match index::index_snapshot_file(&sp, root, &id) {
            Ok(()) => {
                sp.commit().sql()?;
                report.snapshots_completed += 1;
            }
            Err(e) => report.unreadable.push(format!("snapshot {id}: {e}")),
        }
    }
    tx.commit().sql()?;
    for u in &report.unreadable {
        eprintln!(
            "opsi-backup: warning: {u} (left in place; `verify` and `rebuild-index` report it)"
        );
    }
    Ok(report)
}
