//! Opening and creating a repository on object storage, whose index is a local cache. Spec:
//! `store-format/README.md`, section "Remote repositories".
//!
//! The cache lives in `<cache base>/<repository id>/` (`index.sqlite`, the local `lock` and
//! `locks/`, `tmp/` for packs being filled). At each open it is compared with the bucket: the
//! snapshot files listed there against the snapshots it knows, and the removal generation
//! (`state/generation`, rewritten by every command that removes data files, before it
//! removes any) against the one it last saw. New snapshot files only: their packs and they
//! are indexed. Anything removed elsewhere: the cache catches up with the listings
//! (`catch_up`), or is rebuilt from the bucket when it cannot tell. A missing cache is built
//! from the bucket.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, IoContext, Result};
use crate::logging;
use crate::store::config::{ChunkerParams, Config};
use crate::store::keys::{self, InUse, PasswordSource, RepoPassword};
use crate::store::location::Location;
use crate::store::lock::{LockKind, LockSite};
use crate::store::rebuild::{self, list_snapshots};
use crate::store::storage::{S3Storage, Storage, CONFIG_KEY};
use crate::store::{catch_up, durable, index, recovery};

/// The removal generation: a random value, new for each command that removes data files.
const GENERATION_KEY: &str = "state/generation";
/// The generation the cache last caught up with (a file of the cache directory).
const SEEN_FILE: &str = "generation-seen";

fn parts(location: &Location) -> (&crate::store::S3Address, &crate::store::S3Options, &Path) {
    match location {
        Location::S3 {
            address,
            options,
            cache_base,
        } => (address, options, cache_base),
        Location::Local(_) => unreachable!("a remote location"),
    }
}

/// A remote repository, opened: what `Repository::remote` is made of.
pub(crate) struct Opened {
    pub cache: PathBuf,
    pub storage: Arc<dyn Storage>,
    pub shown: String,
    pub config: Config,
    pub conn: rusqlite::Connection,
    pub keys: Option<InUse>,
}

/// Creates a repository at the S3 `location`: a prefix with no repository in it.
/// Encrypted when `password` is given.
pub(crate) fn init(
    location: &Location,
    params: ChunkerParams,
    password: Option<&RepoPassword>,
) -> Result<Opened> {
    let (address, options, cache_base) = parts(location);
    let shown = address.to_string();
    let mut storage = S3Storage::new(address, options, PathBuf::new())?;
    // The first request: wrong credentials or a missing bucket end here, nothing written.
    if storage
        .exists(CONFIG_KEY)
        .map_err(|e| Error::io(format!("looking for {}", storage.show(CONFIG_KEY)), e))?
    {
        return Err(Error::Repository(format!(
            "{shown} already holds a repository"
        )));
    }
    if !storage.list("packs/")?.is_empty()
        || !storage.list("snapshots/")?.is_empty()
        || !storage.list(keys::KEYS_PREFIX)?.is_empty()
    {
        return Err(Error::Repository(format!(
            "{shown} holds packs, snapshot or key files but no config.json; a repository is \
             created under a new or empty prefix"
        )));
    }
    let config = match password {
        None => Config::new(params)?,
        Some(_) => Config::new_encrypted(params)?,
    };
    let cache = prepare_cache(cache_base, &config.id)?;
    storage.set_temp_dir(cache.join("tmp"));
    let storage: Arc<dyn Storage> = Arc::new(storage);
    let (storage, keys) = match password {
        None => (storage, None),
        Some(pw) => {
            let (unlocked, in_use) = keys::create(&storage, &config.id, pw)?;
            (unlocked, Some(in_use))
        }
    };
    let index::Opened::Ready { conn, .. } = index::open(&cache, &config.id)? else {
        return Err(Error::Repository(format!(
            "{} holds an index of another format",
            cache.display()
        )));
    };
    keys::check_remembered(&conn, keys.is_some(), &shown)?;
    drop(durable::open_or_create(&cache.join("lock"))?);
    // config.json last: a prefix without it is not (yet) a repository.
    config.save_sealed(&*storage, storage.crypt())?;
    let config = Config::load(&*storage)?;
    write_seen(&cache, "")?;
    Ok(Opened {
        cache,
        storage,
        shown,
        config,
        conn,
        keys,
    })
}

/// Opens the repository at the S3 `location`, bringing its index cache up to date.
/// `for_rebuild`: `rebuild-index` follows (a damaged cache is moved aside, a missing one is
/// left empty for it).
/// `password` is asked only when the repository is encrypted.
pub(crate) fn open(
    location: &Location,
    for_rebuild: bool,
    password: PasswordSource<'_>,
) -> Result<Opened> {
    let (address, options, cache_base) = parts(location);
    let shown = address.to_string();
    let mut storage = S3Storage::new(address, options, PathBuf::new())?;
    let config = match Config::load(&storage) {
        Err(Error::Io { cause, .. }) if cause.kind() == io::ErrorKind::NotFound => {
            return Err(Error::NoRepository(format!(
                "no repository at {shown}: it has no config.json; run `opsi-backup init \
                 --repository {shown}` to create one, or give the right address"
            )))
        }
        r => r?,
    };
    let cache = prepare_cache(cache_base, &config.id)?;
    storage.set_temp_dir(cache.join("tmp"));
    let (storage, keys) = keys::unlock_storage(Arc::new(storage), &config, &shown, password)?;
    let site = LockSite {
        root: cache.clone(),
        remote: Some((Arc::clone(&storage), shown.clone())),
    };
    let opened = match index::open(&cache, &config.id) {
        Err(Error::IndexDamaged { .. }) if for_rebuild => {
            let lock = site.acquire_split(
                LockKind::Exclusive,
                LockKind::Shared,
                "move the damaged index cache aside",
            )?;
            let moved = index::move_aside(&cache, &lock)?;
            logging::notice(format!(
                "moved the damaged index cache to {}",
                moved.display()
            ));
            index::open(&cache, &config.id)?
        }
        r => r?,
    };
    let (mut conn, created) = match opened {
        index::Opened::Ready { conn, created } => (conn, created),
        index::Opened::Outdated(_) => {
            let lock = site.acquire_split(
                LockKind::Exclusive,
                LockKind::Shared,
                "rebuild the index cache",
            )?;
            let (conn, _) = index::replace_outdated(&cache, &config.id, &lock)?;
            (conn, true)
        }
    };
    keys::check_remembered(&conn, keys.is_some(), &shown)?;
    if !(created && for_rebuild) {
        catch_up(&cache, &*storage, &mut conn, &site, created, &shown)?;
    }
    Ok(Opened {
        cache,
        storage,
        shown,
        config,
        conn,
        keys,
    })
}

/// Brings the index cache up to date with the bucket (see the module's header).
fn catch_up(
    cache: &Path,
    storage: &dyn Storage,
    conn: &mut rusqlite::Connection,
    site: &LockSite,
    created: bool,
    shown: &str,
) -> Result<()> {
    if !created {
        // What interrupted writers of this machine left, when nobody here works.
        if let Some(_lock) = site.try_exclusive_local("clean up after interrupted writers")? {
            storage.clean_temp()?;
        }
        let remote: BTreeSet<String> = list_snapshots(storage)?.into_iter().collect();
        let known: BTreeSet<String> = index::snapshots(conn)?.into_iter().map(|s| s.id).collect();
        if remote == known && read_generation(storage)? == read_seen(cache) {
            return Ok(());
        }
    }
    let lock = site.acquire_split(
        LockKind::Exclusive,
        LockKind::Shared,
        "bring the index cache up to date",
    )?;
    // Looked at again under the lock: another process of this machine may have done it.
    let generation = read_generation(storage)?;
    let remote: BTreeSet<String> = list_snapshots(storage)?.into_iter().collect();
    let known: BTreeSet<String> = index::snapshots(conn)?.into_iter().map(|s| s.id).collect();
    let removed_elsewhere = generation != read_seen(cache) || !known.is_subset(&remote);
    let mut rebuild_needed = created;
    if removed_elsewhere && !created {
        match catch_up::catch_up(storage, conn, &lock)? {
            Ok(c) => logging::notice(format!(
                "the index cache caught up with {shown} without a rebuild: {} snapshots and {} \
                 packs removed elsewhere dropped ({} chunks moved into new packs, {} dropped), \
                 {} packs and {} snapshots written elsewhere indexed",
                c.snapshots_dropped,
                c.packs_dropped,
                c.chunks_moved,
                c.chunks_dropped,
                c.packs_indexed,
                c.snapshots_indexed
            )),
            Err(why) => {
                logging::notice(format!(
                    "the index cache cannot catch up with {shown} by itself ({why}): rebuilding it"
                ));
                rebuild_needed = true;
            }
        }
    }
    if rebuild_needed {
        let report = rebuild::rebuild(storage, conn, &lock)?;
        recovery::index_unknown(storage, conn, &lock)?;
        logging::notice(format!(
            "{} the index cache {} from {shown}: {} packs, {} snapshots",
            if created { "built" } else { "rebuilt" },
            cache.display(),
            report.packs,
            report.snapshots
        ));
        for s in &report.skipped {
            logging::warning(format!("{s} (left out of the index cache)"));
        }
    } else if !removed_elsewhere && remote != known {
        let r = recovery::index_unknown(storage, conn, &lock)?;
        logging::info(format!(
            "the index cache caught up with {shown}: {} packs, {} snapshots written elsewhere",
            r.packs_reused, r.snapshots_completed
        ));
    }
    write_seen(cache, &generation)
}

/// Writes a new removal generation to the repository: the caller is about to remove data
/// files under the exclusive lock. Returns it, for `write_seen` once the removal is done.
pub(crate) fn new_generation(storage: &dyn Storage) -> Result<String> {
    let g = hex::encode(durable::random_bytes::<16>()?);
    storage.replace(GENERATION_KEY, g.as_bytes())?;
    Ok(g)
}

fn read_generation(storage: &dyn Storage) -> Result<String> {
    let bytes = storage
        .read_small(GENERATION_KEY, 1024)
        .map_err(|e| Error::io(format!("reading {}", storage.show(GENERATION_KEY)), e))?;
    Ok(bytes
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default())
}

fn read_seen(cache: &Path) -> String {
    std::fs::read_to_string(cache.join(SEEN_FILE))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "(never)".into())
}

/// Records that the cache is up to date with removal generation `g`.
pub(crate) fn write_seen(cache: &Path, g: &str) -> Result<()> {
    let path = cache.join(SEEN_FILE);
    let tmp = cache.join(format!("{SEEN_FILE}.tmp"));
    std::fs::write(&tmp, g).path_ctx("writing", &tmp)?;
    std::fs::rename(&tmp, &path).path_ctx("renaming into place", &path)
}

/// `<base>/<id>/`, made (0700) when missing.
fn prepare_cache(base: &Path, id: &str) -> Result<PathBuf> {
    let dir = base.join(id);
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&dir)
        .path_ctx("creating the index cache", &dir)?;
    Ok(dir)
}
