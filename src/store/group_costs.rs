//! What groups of a snapshot's members cost in the repository (`stats SNAPSHOT`: the depot's
//! products). The caller names each member's group; the store knows no products. A chunk
//! used by one group alone within the snapshot is that group's own; one used by several is
//! shared, counted once in the total and in each user's `shared_bytes`. Stored bytes are a
//! chunk's share of its compressed group (section "Pack files"), so the figures add up to
//! what the snapshot's chunks take in packs. Members of no group are left out.
//!
//! Memory: 8 bytes per chunk of the grouped members (row and group packed in one `u64`, sorted
//! once all are read), never the chunks' contents: a 500 GB depot of ~6,000,000 chunks takes
//! ~48 MB.

use std::collections::HashMap;

use rusqlite::Connection;

use crate::error::Result;
use crate::member::Member;
use crate::store::index;
use crate::store::reader;
use crate::store::storage::Storage;

/// One group's cost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupCost {
    pub key: String,
    /// Regular file members and their plain bytes.
    pub files: u64,
    pub size: u64,
    /// Stored bytes of the chunks only this group uses within the snapshot.
    pub own_bytes: u64,
    /// Stored bytes of the chunks it shares with other groups.
    pub shared_bytes: u64,
}

/// Every group's cost, in the order groups first appear, and the shared chunks counted once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupCosts {
    pub groups: Vec<GroupCost>,
    pub shared_bytes: u64,
}

/// Bits of a packed (row, group) pair that hold the group: 16 million groups (products), and
/// rows below 2^40.
const GROUP_BITS: u32 = 24;

pub(crate) fn group_costs(
    conn: &Connection,
    storage: &dyn Storage,
    snapshot_row: i64,
    group_of: &dyn Fn(&Member) -> Option<String>,
) -> Result<GroupCosts> {
    let mut out = GroupCosts::default();
    let mut index_of: HashMap<String, u32> = HashMap::new();
    let mut uses: Vec<u64> = Vec::new();
    reader::for_each_member(conn, storage, snapshot_row, |m, rows| {
        let Some(key) = group_of(&m) else {
            return Ok(());
        };
        let g = *index_of.entry(key.clone()).or_insert_with(|| {
            out.groups.push(GroupCost {
                key,
                ..GroupCost::default()
            });
            (out.groups.len() - 1) as u32
        });
        if m.is_file() {
            out.groups[g as usize].files += 1;
            out.groups[g as usize].size += m.size;
        }
        for row in rows {
            if !(1..1 << (64 - GROUP_BITS)).contains(&row) || g >= 1 << GROUP_BITS {
                return Err(index::damaged(&format!("chunk row {row} of {}", m.path)));
            }
            uses.push((row as u64) << GROUP_BITS | u64::from(g));
        }
        Ok(())
    })?;
    // Each chunk's distinct users next to each other: one is the owner, several share it.
    uses.sort_unstable();
    uses.dedup();
    let mask = (1u64 << GROUP_BITS) - 1;
    for users in uses.chunk_by(|a, b| a >> GROUP_BITS == b >> GROUP_BITS) {
        let row = (users[0] >> GROUP_BITS) as i64;
        let bytes = index::stored_share(conn, row)?
            .ok_or_else(|| index::damaged(&format!("chunk row {row} is not in the index")))?;
        if let [one] = users {
            out.groups[(one & mask) as usize].own_bytes += bytes;
        } else {
            out.shared_bytes += bytes;
            for u in users {
                out.groups[(u & mask) as usize].shared_bytes += bytes;
            }
        }
    }
    Ok(out)
}
