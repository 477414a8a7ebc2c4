//! Rebuilding the SQLite index from the pack trailers and snapshot files alone. Spec:
//! `store-format/README.md`, section "Rebuilding the index".

use rusqlite::Connection;
use serde::Serialize;

use crate::error::Result;
use crate::store::index::{self, SqlContext};
use crate::store::indexer;
use crate::store::lock::RepoLock;
use crate::store::pack;
use crate::store::reader::read_snapshot_file;
use crate::store::snapshot;
use crate::store::storage::Storage;

/// What `Repository::rebuild_index` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RebuildReport {
    pub packs: u64,
    pub snapshots: u64,
    /// Packs and snapshot files that could not be read at all, with the reason.
    pub skipped: Vec<String>,
    /// Packs indexed from their trailer copy because the final trailer is damaged (format
    /// version 4): their data is whole, the damage is `verify`'s to report.
    pub repaired: Vec<String>,
    /// Snapshots whose file is intact but which cannot be restored: a chunk they need is in
    /// no readable pack.
    pub lost: Vec<LostSnapshot>,
}

impl RebuildReport {
    /// The distinct chunks (hex ids) the lost snapshots miss, sorted.
    pub fn lost_chunks(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .lost
            .iter()
            .flat_map(|l| {
                l.meta_chunks
                    .iter()
                    .chain(l.members.iter().flat_map(|m| m.chunks.iter()))
            })
            .cloned()
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

/// A snapshot left out of the index because chunks it needs are in no readable pack.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LostSnapshot {
    pub id: String,
    /// Unix seconds, from the snapshot file's header.
    pub time: i64,
    pub host: String,
    /// Missing metadata chunks (hex ids): the member list itself cannot be read then.
    pub meta_chunks: Vec<String>,
    /// The members with missing chunks (when the member list could be read).
    pub members: Vec<LostMember>,
    /// Set when the member list could not be read for another reason (a damaged group).
    pub unreadable: Option<String>,
}

/// A member of a lost snapshot and the chunks of it that are in no readable pack.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LostMember {
    pub path: String,
    /// Hex ids, in the member's order.
    pub chunks: Vec<String>,
}

/// Empties the index and fills it from the data files, in one transaction. The caller holds
/// the exclusive lock.
pub(crate) fn rebuild(
    storage: &dyn Storage,
    conn: &mut Connection,
    _lock: &RepoLock,
) -> Result<RebuildReport> {
    let mut report = RebuildReport::default();
    let mut tx = index::immediate(conn)?;
    index::clear(&tx)?;
    for name in list_packs(storage)? {
        match pack::read_table(storage, &name) {
            Ok(t) => {
                index::insert_pack(&tx, &name, t.size, &t.groups, &mut |_, _| {})?;
                if let Some(why) = t.final_damaged {
                    report.repaired.push(format!(
                        "pack {name}: {why}; its table was read from the trailer copy"
                    ));
                }
                report.packs += 1;
            }
            Err(e) => report.skipped.push(format!("pack {name}: {e}")),
        }
    }
    for id in list_snapshots(storage)? {
        let sp = tx.savepoint().sql()?;
        match indexer::index_snapshot_file(&sp, storage, &id) {
            Ok(()) => {
                sp.commit().sql()?;
                report.snapshots += 1;
            }
            Err(e) => {
                drop(sp);
                match what_is_lost(&tx, storage, &id)? {
                    Some(lost) => report.lost.push(lost),
                    None => report.skipped.push(format!("snapshot {id}: {e}")),
                }
            }
        }
    }
    tx.commit().sql()?;
    Ok(report)
}

/// Why snapshot `id` could not be indexed, when its file is intact: the chunks it needs that
/// are in no indexed pack. `None` when the file itself is damaged, or nothing is missing.
fn what_is_lost(
    conn: &Connection,
    storage: &dyn Storage,
    id: &str,
) -> Result<Option<LostSnapshot>> {
    let Ok(file) = snapshot::read_snapshot_head(storage, id) else {
        return Ok(None);
    };
    let mut lost = LostSnapshot {
        id: id.to_string(),
        time: file.header.meta.time,
        host: file.header.meta.host.clone(),
        ..LostSnapshot::default()
    };
    for c in &file.meta_chunks {
        if !index::chunk_known(conn, c)? {
            lost.meta_chunks.push(hex::encode(c));
        }
    }
    if lost.meta_chunks.is_empty() {
        let read = read_snapshot_file(conn, storage, id, |m: crate::member::Member, chunks| {
            let mut missing = Vec::new();
            for c in &chunks {
                if !index::chunk_known(conn, c)? {
                    missing.push(hex::encode(c));
                }
            }
            if !missing.is_empty() {
                lost.members.push(LostMember {
                    path: m.path,
                    chunks: missing,
                });
            }
            Ok(())
        });
        if let Err(e) = read {
            lost.unreadable = Some(e.to_string());
        }
    }
    let nothing_missing = lost.meta_chunks.is_empty() && lost.members.is_empty();
    Ok((!nothing_missing).then_some(lost))
}

fn is_hex_name(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Names of the pack files under `packs/`, sorted.
pub(crate) fn list_packs(storage: &dyn Storage) -> Result<Vec<String>> {
    let mut names: Vec<String> = storage
        .list("packs/")?
        .iter()
        .filter_map(|k| {
            let mut parts = k.strip_prefix("packs/")?.split('/');
            let (_, file) = (parts.next()?, parts.next()?);
            let name = file.strip_suffix(".pack").filter(|n| is_hex_name(n))?;
            parts.next().is_none().then(|| name.to_string())
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Ids of the snapshot files under `snapshots/`, sorted.
pub(crate) fn list_snapshots(storage: &dyn Storage) -> Result<Vec<String>> {
    let mut names: Vec<String> = storage
        .list("snapshots/")?
        .iter()
        .filter_map(|k| {
            let id = k.strip_prefix("snapshots/")?.strip_suffix(".snap")?;
            is_hex_name(id).then(|| id.to_string())
        })
        .collect();
    names.sort();
    Ok(names)
}
