//! What groups of a snapshot's members cost in the repository (`stats SNAPSHOT`: the depot's
//! products). The caller names each member's group; the store knows no products. A chunk
//! used by one group alone within the snapshot is that group's own; one used by several is
//! shared, counted once in the total and in each user's `shared_bytes`. Stored bytes are a
//! chunk's share of its compressed group (section "Pack files"), so the figures add up to
//! what the snapshot's chunks take in packs. Members of no group are left out.
//!
//! Memory: one map entry per distinct chunk of the grouped members (~40 bytes; a 100 GB depot
//! cut at 512 KiB on average is ~200,000 chunks, ~8 MB), never the chunks' contents.

use std::collections::hash_map::Entry;
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

/// The groups using a chunk: almost always one.
enum Users {
    One(u32),
    Many(Vec<u32>),
}

pub(crate) fn group_costs(
    conn: &Connection,
    storage: &dyn Storage,
    snapshot_row: i64,
    group_of: &dyn Fn(&Member) -> Option<String>,
) -> Result<GroupCosts> {
    let mut out = GroupCosts::default();
    let mut index_of: HashMap<String, u32> = HashMap::new();
    let mut users: HashMap<i64, Users> = HashMap::new();
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
            match users.entry(row) {
                Entry::Vacant(v) => {
                    v.insert(Users::One(g));
                }
                Entry::Occupied(mut o) => match o.get_mut() {
                    Users::One(first) if *first != g => *o.get_mut() = Users::Many(vec![*first, g]),
                    Users::Many(list) if !list.contains(&g) => list.push(g),
                    _ => {}
                },
            }
        }
        Ok(())
    })?;
    for (row, who) in users {
        let bytes = index::stored_share(conn, row)?
            .ok_or_else(|| index::damaged(&format!("chunk row {row} is not in the index")))?;
        match who {
            Users::One(g) => out.groups[g as usize].own_bytes += bytes,
            Users::Many(list) => {
                out.shared_bytes += bytes;
                for g in list {
                    out.groups[g as usize].shared_bytes += bytes;
                }
            }
        }
    }
    Ok(out)
}
