//! `probe` of a repository on object storage, for monitoring: the same figures as for a local
//! directory, read without a lock, a password or a write, neither to the bucket nor to the
//! index cache. The snapshots come from this machine's index cache (read only), compared
//! with the bucket's listing; the verify record, lock objects and unfinished uploads from the
//! bucket. Requests: a HEAD and a GET of `config.json`, a LIST of `snapshots/`, a GET of the
//! verify record, a LIST of `locks/` (and a GET per lock object), a LIST of the uploads.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::UNIX_EPOCH;

use crate::error::{Error, Result};
use crate::store::config::Config;
use crate::store::index;
use crate::store::last_verify;
use crate::store::location::Location;
use crate::store::object_lock;
use crate::store::pending_uploads;
use crate::store::probe::{probe, Probe, RemoteNotes};
use crate::store::rebuild::list_snapshots;
use crate::store::storage::{S3Storage, Storage, CONFIG_KEY};

/// Looks at the repository at `location`: `probe` for a directory, `probe_remote` for a
/// bucket.
pub(crate) fn probe_at(location: &Location) -> Result<Probe> {
    match location {
        Location::Local(root) => probe(root),
        Location::S3 { .. } => probe_remote(location),
    }
}

fn probe_remote(location: &Location) -> Result<Probe> {
    let Location::S3 {
        address,
        options,
        cache_base,
    } = location
    else {
        unreachable!("a remote location");
    };
    // No temporary file is made: nothing is written.
    let storage = S3Storage::new(address, options, PathBuf::new())?;
    let created = match storage.stat(CONFIG_KEY) {
        Ok(Some(info)) => info
            .modified
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64),
        Ok(None) => {
            return Err(Error::NoRepository(format!(
                "no repository at {address}: it has no config.json"
            )))
        }
        Err(e) => {
            return Err(Error::io(
                format!("reading {}", storage.show(CONFIG_KEY)),
                e,
            ))
        }
    };
    let config = Config::load(&storage)?;
    let cache = cache_base.join(&config.id);
    let Some(conn) = index::open_read_only(&cache, &config.id)? else {
        return Err(Error::Repository(format!(
            "this machine has no index cache of {address} (in {}); any command that opens the \
             repository, such as `opsi-backup snapshots`, builds it",
            cache.display()
        )));
    };
    let mut snapshots = index::snapshots(&conn)?;
    let listed: BTreeSet<String> = list_snapshots(&storage)?.into_iter().collect();
    let known: BTreeSet<String> = snapshots.iter().map(|s| s.id.clone()).collect();
    // A snapshot removed elsewhere is not counted as the newest.
    snapshots.retain(|s| listed.contains(&s.id));
    let notes = RemoteNotes {
        unknown_snapshots: listed.difference(&known).count() as u64,
        gone_snapshots: known.difference(&listed).count() as u64,
        uploads: pending_uploads::survey(&storage).map_err(|e| e.to_string()),
    };
    Ok(Probe {
        snapshots,
        last_verify: last_verify::read(&storage)?,
        created,
        holders: object_lock::live_holders(&storage)?,
        remote: Some(notes),
    })
}
