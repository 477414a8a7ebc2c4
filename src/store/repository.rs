//! `Repository`: opening, creating and querying a repository directory. Spec:
//! `store-format/README.md`, sections "Directory layout", "config.json" and "Locking".

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::Connection;

use crate::error::{Error, IoContext, Result};
use crate::logging;
use crate::member::Member;
use crate::retention::{self, Candidate, Decision, Policy};
use crate::sink::MemberSink;
use crate::store::config::{ChunkerParams, Config, KINDS_VERSION};
use crate::store::group_costs::{self, GroupCosts};
use crate::store::keys::{self, InUse, KeyInfo, PasswordSource, RepoPassword};
use crate::store::last_verify::{self, LastVerify};
use crate::store::location::Location;
use crate::store::lock::{LockKind, LockSite, RepoLock};
use crate::store::pack::TrailerLayout;
use crate::store::prune::{self, PruneOptions, PruneReport};
use crate::store::rebuild::{self, RebuildReport};
use crate::store::snapshot::SnapshotMeta;
use crate::store::snapshot_info::SnapshotInfo;
use crate::store::snapshot_writer::SnapshotWriter;
use crate::store::storage::{LocalDir, Storage, CONFIG_KEY};
use crate::store::verify::{self, VerifyOptions, VerifyReport};
use crate::store::{durable, index, pending_uploads, reader, recovery, remote};

/// An open repository. Its data files (packs, snapshot files, `config.json`, `state/`) are
/// read and written through `storage`; the index and the lock are local files under `root`.
/// Cheap queries go through one shared index connection; each `SnapshotWriter` opens its
/// own, so several writers (threads or processes) work at once.
pub struct Repository {
    root: PathBuf,
    storage: Arc<dyn Storage>,
    config: Config,
    conn: Mutex<Connection>,
    /// Where the lock lives: the flock under `root`, and for a remote repository also the
    /// lock objects there.
    site: LockSite,
    /// How the repository is named in messages (its directory or its address).
    shown: String,
    /// An encrypted repository's master key and the key file that gave it (its storage
    /// carries the derived keys).
    keys: Option<InUse>,
}

/// Why the directory `path` cannot be opened as a repository, from what stat said of the
/// directory (`Ok(is_dir)`) and of its config.json, with the next step to take.
fn check_opens(path: &Path, dir: std::io::Result<bool>, config: std::io::Result<()>) -> Result<()> {
    use std::io::ErrorKind::{NotFound, PermissionDenied};
    let shown = path.display();
    let denied = |what: &str| permission_denied(path, what);
    match dir {
        Ok(true) => {}
        Ok(false) => {
            return Err(Error::NoRepository(format!(
                "no repository at {shown}: it is a file, not a directory; give the repository's \
                 directory with --repository DIR"
            )))
        }
        Err(e) if e.kind() == NotFound => {
            return Err(Error::NoRepository(format!(
                "no repository at {shown}: the directory does not exist; run \
                 `opsi-backup init --repository {shown}` to create one, or give the right \
                 --repository DIR"
            )))
        }
        Err(e) if e.kind() == PermissionDenied => return Err(denied("the way to it")),
        Err(e) => {
            return Err(Error::io(
                format!("cannot open the repository at {shown}"),
                e,
            ))
        }
    }
    match config {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == NotFound => Err(Error::NoRepository(format!(
            "{shown} is not an opsi-backup repository (it has no config.json); give the \
             repository's directory with --repository DIR, or create one in a new or empty \
             directory with `opsi-backup init --repository DIR`"
        ))),
        Err(e) if e.kind() == PermissionDenied => Err(denied("its directory")),
        Err(e) => Err(Error::io(
            format!("cannot open the repository at {shown}"),
            e,
        )),
    }
}

fn permission_denied(path: &Path, what: &str) -> Error {
    Error::Repository(format!(
        "cannot read the repository at {}: permission denied on {what}; run opsi-backup as \
         root or as the repository's owner (a repository is readable by its owner only)",
        path.display()
    ))
}

impl Repository {
    fn local(
        path: &Path,
        storage: Arc<dyn Storage>,
        config: Config,
        conn: Connection,
        keys: Option<InUse>,
    ) -> Repository {
        Repository {
            keys,
            root: path.to_path_buf(),
            storage,
            config,
            conn: Mutex::new(conn),
            site: LockSite {
                root: path.to_path_buf(),
                remote: None,
            },
            shown: path.display().to_string(),
        }
    }

    /// A repository whose data files are in a bucket, its index and local lock in its cache
    /// directory (`store::remote`).
    fn remote(opened: remote::Opened) -> Repository {
        let remote::Opened {
            cache,
            storage,
            shown,
            config,
            conn,
            keys,
        } = opened;
        Repository {
            keys,
            root: cache.clone(),
            site: LockSite {
                root: cache,
                remote: Some((Arc::clone(&storage), shown.clone())),
            },
            storage,
            config,
            conn: Mutex::new(conn),
            shown,
        }
    }

    /// Opens the repository at `location`: a directory or a bucket (`store::remote`). An
    /// encrypted one is refused (`open_at_with` takes its password).
    pub fn open_at(location: &Location) -> Result<Repository> {
        Repository::open_at_with(location, &keys::no_password)
    }

    /// `open_at`; `password` is asked only when the repository is encrypted.
    pub fn open_at_with(location: &Location, password: PasswordSource<'_>) -> Result<Repository> {
        match location {
            Location::Local(path) => Repository::open_with(path, true, password),
            Location::S3 { .. } => remote::open(location, false, password).map(Repository::remote),
        }
    }

    /// `open_for_rebuild` of the repository at `location`.
    pub fn open_for_rebuild_at(
        location: &Location,
        password: PasswordSource<'_>,
    ) -> Result<Repository> {
        match location {
            Location::Local(path) => Repository::open_for_rebuild(path, password),
            Location::S3 { .. } => remote::open(location, true, password).map(Repository::remote),
        }
    }

    /// Creates a repository at `location`, encrypted when `password` is given.
    pub fn init_at(location: &Location, password: Option<&RepoPassword>) -> Result<Repository> {
        match location {
            Location::Local(path) => {
                Repository::init_full(path, ChunkerParams::default(), password)
            }
            Location::S3 { .. } => {
                remote::init(location, ChunkerParams::default(), password).map(Repository::remote)
            }
        }
    }

    /// Whether the repository is encrypted (format version 6).
    pub fn is_encrypted(&self) -> bool {
        self.keys.is_some()
    }

    /// How the repository is named in messages: its directory or its address.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Whether the data files are on object storage (the index is a local cache then).
    pub fn is_remote(&self) -> bool {
        self.site.remote.is_some()
    }

    /// The bytes of the indexed packs (a remote repository's size: its bucket is not a
    /// directory to measure).
    pub fn pack_bytes(&self) -> Result<u64> {
        Ok(index::pack_totals(&self.conn())?.1)
    }

    /// Takes the repository lock (`LockSite::acquire`).
    pub(crate) fn lock(&self, kind: LockKind, purpose: &str) -> Result<RepoLock> {
        self.site.acquire(kind, purpose)
    }

    /// Creates a repository in `path` (a new or empty directory) with the default parameters.
    pub fn init(path: &Path) -> Result<Repository> {
        Repository::init_with(path, ChunkerParams::default())
    }

    /// Creates a repository with explicit chunking parameters (measurements, tests).
    pub fn init_with(path: &Path, params: ChunkerParams) -> Result<Repository> {
        Repository::init_full(path, params, None)
    }

    /// Creates an encrypted repository in `path` whose first key opens with `password`.
    pub fn init_encrypted(path: &Path, password: &RepoPassword) -> Result<Repository> {
        Repository::init_full(path, ChunkerParams::default(), Some(password))
    }

    fn init_full(
        path: &Path,
        params: ChunkerParams,
        password: Option<&RepoPassword>,
    ) -> Result<Repository> {
        // A file on the way would fail deep inside with a bare "Not a directory".
        if let Some(file) = path.ancestors().find(|a| a.is_file()) {
            let what = if file == path {
                "it is a file".to_string()
            } else {
                format!("{} is a file", file.display())
            };
            return Err(Error::Repository(format!(
                "cannot create a repository at {}: {what}; give a new or empty directory",
                path.display()
            )));
        }
        let local = LocalDir::new(path);
        if local.exists(CONFIG_KEY).unwrap_or(false) {
            return Err(Error::Repository(format!(
                "{} already holds a repository",
                path.display()
            )));
        }
        if path.exists() {
            let mut entries = fs::read_dir(path).path_ctx("listing", path)?;
            if entries.next().is_some() {
                return Err(Error::Repository(format!(
                    "{} is not empty; a repository is created in a new or empty directory",
                    path.display()
                )));
            }
            fs::set_permissions(path, fs::Permissions::from_mode(0o700))
                .path_ctx("setting permissions of", path)?;
        }
        durable::create_dir(path)?;
        local.create_dirs()?;
        let storage: Arc<dyn Storage> = Arc::new(local);
        let (config, storage, keys) = match password {
            None => (Config::new(params)?, storage, None),
            Some(pw) => {
                let config = Config::new_encrypted(params)?;
                let (unlocked, in_use) = keys::create(&storage, &config.id, pw)?;
                (config, unlocked, Some(in_use))
            }
        };
        let index::Opened::Ready { conn, .. } = index::open(path, &config.id)? else {
            return Err(Error::Repository(format!(
                "{} appeared while the repository was being created",
                path.join("index.sqlite").display()
            )));
        };
        keys::check_remembered(&conn, keys.is_some(), &path.display().to_string())?;
        drop(durable::open_or_create(&path.join("lock"))?);
        // config.json last: a directory without it is not (yet) a repository.
        config.save_sealed(&*storage, storage.crypt())?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            durable::sync_dir(parent)?;
        }
        let config = Config::load(&*storage)?;
        Ok(Repository::local(path, storage, config, conn, keys))
    }

    /// Opens an existing repository. When nobody else uses it, cleans what interrupted
    /// writers left behind; when `index.sqlite` is missing, rebuilds it from the data files.
    /// A damaged `index.sqlite` is `Error::IndexDamaged`, and nothing is changed.
    pub fn open(path: &Path) -> Result<Repository> {
        Repository::open_with(path, true, &keys::no_password)
    }

    /// `open` of an encrypted repository (or a plain one: `password` is then not asked).
    pub fn open_encrypted(path: &Path, password: PasswordSource<'_>) -> Result<Repository> {
        Repository::open_with(path, true, password)
    }

    /// Raises a repository of format version 2 to 4 to version 5, the first whose snapshots
    /// may be opsiconfd backups (older programs would take those for archives and refuse the
    /// raised repository instead). Nothing but `config.json`'s version changes; returns
    /// whether it was raised.
    pub fn allow_kinds(&mut self) -> Result<bool> {
        if self.config.version >= KINDS_VERSION {
            return Ok(false);
        }
        let _lock = self.lock(LockKind::Exclusive, "raise the format version")?;
        let mut config = Config::load(self.storage())?;
        let raised = config.version < KINDS_VERSION;
        if raised {
            config.version = KINDS_VERSION;
            config.save(self.storage())?;
        }
        self.config = config;
        Ok(raised)
    }

    /// Opens a repository for `rebuild_index`, which the caller runs next: a damaged
    /// `index.sqlite` is moved aside (`index.sqlite.damaged-<time>`, with its WAL files) and
    /// a new, empty one created.
    pub fn open_for_rebuild(path: &Path, password: PasswordSource<'_>) -> Result<Repository> {
        match Repository::open_with(path, false, password) {
            Err(Error::IndexDamaged { detail, .. }) => {
                let lock =
                    RepoLock::acquire(path, LockKind::Exclusive, "move the damaged index aside")?;
                let moved = index::move_aside(path, &lock)?;
                logging::notice(format!(
                    "the index was damaged ({detail}); moved it to {}",
                    moved.display()
                ));
                drop(lock);
                Repository::open_with(path, false, password)
            }
            r => r,
        }
    }

    /// `open`; `rebuild_missing`: whether a missing index is rebuilt here (the caller rebuilds
    /// it otherwise).
    fn open_with(
        path: &Path,
        rebuild_missing: bool,
        password: PasswordSource<'_>,
    ) -> Result<Repository> {
        check_opens(
            path,
            fs::metadata(path).map(|m| m.is_dir()),
            fs::metadata(path.join(CONFIG_KEY)).map(|_| ()),
        )?;
        let local = LocalDir::new(path);
        let config = Config::load(&local).map_err(|e| match e {
            Error::Io { cause, .. } if cause.kind() == std::io::ErrorKind::PermissionDenied => {
                permission_denied(path, "config.json")
            }
            e => e,
        })?;
        local.create_dirs()?;
        let shown = path.display().to_string();
        let (storage, keys) = keys::unlock_storage(Arc::new(local), &config, &shown, password)?;
        let (mut conn, created, lock) = match index::open(path, &config.id)? {
            index::Opened::Ready { conn, created } => (conn, created, None),
            index::Opened::Outdated(_) => {
                // Rebuilt like a missing index, but removed only under the exclusive lock.
                let lock = RepoLock::acquire(path, LockKind::Exclusive, "rebuild the index")?;
                let (conn, created) = index::replace_outdated(path, &config.id, &lock)?;
                (conn, created, Some(lock))
            }
        };
        if created && !rebuild_missing {
            // The caller rebuilds the index next, under the exclusive lock.
        } else if created {
            let lock = match lock {
                Some(lock) => lock,
                None => RepoLock::acquire(path, LockKind::Exclusive, "rebuild the missing index")?,
            };
            rebuild::rebuild(&*storage, &mut conn, &lock)?;
            recovery::recover(&*storage, &mut conn, &lock)?;
        } else {
            let lock = match lock {
                Some(lock) => Some(lock),
                None => RepoLock::try_exclusive(path, "clean up after interrupted writers")?,
            };
            if let Some(lock) = lock {
                recovery::recover(&*storage, &mut conn, &lock)?;
            }
        }
        keys::check_remembered(&conn, keys.is_some(), &shown)?;
        Ok(Repository::local(path, storage, config, conn, keys))
    }

    /// The key files of an encrypted repository (`key list`).
    pub fn keys(&self) -> Result<Vec<KeyInfo>> {
        let in_use = self.in_use()?;
        keys::list(self.storage(), Some(&in_use.key_id))
    }

    fn in_use(&self) -> Result<&InUse> {
        self.keys.as_ref().ok_or_else(|| {
            Error::Invalid(format!(
                "repository {} is not encrypted: it has no keys",
                self.shown
            ))
        })
    }

    /// Adds a key file that opens with `password` (`key add`); returns its id.
    pub fn add_key(&self, password: &RepoPassword) -> Result<String> {
        let in_use = self.in_use()?;
        keys::add(self.storage(), &self.config.id, &in_use.master, password)
    }

    /// Removes key file `id` (a unique prefix will do); refuses the key in use and the last
    /// usable one (`key remove`). Returns the full id.
    pub fn remove_key(&self, id: &str) -> Result<String> {
        let in_use = self.in_use()?;
        let _lock = self.lock(LockKind::Exclusive, "remove a key")?;
        keys::remove(self.storage(), id, &in_use.key_id)
    }

    /// Replaces the key in use by one that opens with `password` (`key passwd`): the new key
    /// file is written first, then the old one removed. Returns the new and the old id.
    pub fn change_password(&self, password: &RepoPassword) -> Result<(String, String)> {
        let in_use = self.in_use()?;
        let _lock = self.lock(LockKind::Exclusive, "change a password")?;
        let new = keys::add(self.storage(), &self.config.id, &in_use.master, password)?;
        keys::remove(self.storage(), &in_use.key_id, &new)?;
        Ok((new, in_use.key_id.clone()))
    }

    /// The local directory of the index and the lock (and, for a local repository, of the
    /// data files: those are read and written through `storage` only); for a remote
    /// repository its index cache.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the data files live.
    pub(crate) fn storage(&self) -> &dyn Storage {
        &*self.storage
    }

    /// The index database, a local cache of what the data files say.
    pub(crate) fn index_path(&self) -> PathBuf {
        self.root.join("index.sqlite")
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a snapshot; takes the shared lock (waiting, with a message, while a deleting
    /// command holds the exclusive one).
    pub fn begin_snapshot(&self, meta: SnapshotMeta) -> Result<SnapshotWriter<'_>> {
        SnapshotWriter::new(self, meta)
    }

    /// Committed snapshots, oldest first.
    pub fn snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        index::snapshots(&self.conn())
    }

    /// Finds a snapshot by `latest` or by a unique prefix of its id.
    pub fn resolve(&self, spec: &str) -> Result<SnapshotInfo> {
        let all = self.snapshots()?;
        if spec == "latest" {
            return all
                .into_iter()
                .next_back()
                .ok_or_else(|| Error::Invalid("the repository has no snapshots yet".into()));
        }
        let prefix = spec.to_ascii_lowercase();
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Invalid(format!(
                "{spec:?} is not a snapshot id (hex digits) nor \"latest\""
            )));
        }
        let mut hits: Vec<SnapshotInfo> = all
            .into_iter()
            .filter(|s| s.id.starts_with(&prefix))
            .collect();
        match hits.len() {
            0 => Err(Error::Invalid(format!("no snapshot with id {spec}"))),
            1 => Ok(hits.remove(0)),
            _ => {
                let ids: Vec<String> = hits.iter().map(|s| s.id[..16].to_string()).collect();
                Err(Error::Invalid(format!(
                    "snapshot id {spec} is ambiguous: it matches {}",
                    ids.join(", ")
                )))
            }
        }
    }

    /// The members of snapshot `id` (a full id or anything `resolve` accepts), metadata only.
    pub fn members(&self, id: &str) -> Result<Vec<Member>> {
        let info = self.resolve(id)?;
        let conn = self.conn();
        let mut out = Vec::new();
        reader::read_snapshot_file(&conn, self.storage(), &info.id, |m, _| {
            out.push(m);
            Ok(())
        })?;
        Ok(out)
    }

    /// Feeds every member of snapshot `id`, in order and with its content, into `sink`. Each
    /// chunk is checked against its BLAKE3 id as it is read; a mismatch is `Error::Corrupt`
    /// naming pack, chunk and member. A member the sink leaves unread is neither fetched nor
    /// checked (a read one is checked to its end: its chunks must hold exactly its size).
    pub fn replay(&self, id: &str, sink: &mut dyn MemberSink) -> Result<()> {
        self.replay_selected(id, &|_| true, sink)
    }

    /// `replay` that reads the content of the members `want` accepts only: every other member
    /// reaches `sink` as metadata alone (`MemberSink::pass_over`), its chunks untouched. The
    /// snapshot's metadata stream is read (and checked) whole either way.
    pub fn replay_selected(
        &self,
        id: &str,
        want: &dyn Fn(&Member) -> bool,
        sink: &mut dyn MemberSink,
    ) -> Result<()> {
        let info = self.resolve(id)?;
        let _lock = self.lock(LockKind::Shared, "read a snapshot")?;
        // An own connection: a long replay does not block other users of this Repository.
        let conn = index::connect(&self.index_path())?;
        reader::replay(
            &conn,
            self.storage(),
            index::snapshot_row(&conn, &info.id)?,
            want,
            sink,
        )
    }

    /// What the groups of snapshot `id`'s members cost (`group_costs.rs`): `group_of` names a
    /// member's group, or none to leave it out.
    pub fn group_costs(
        &self,
        id: &str,
        group_of: &dyn Fn(&Member) -> Option<String>,
    ) -> Result<GroupCosts> {
        let info = self.resolve(id)?;
        let _lock = self.lock(LockKind::Shared, "read a snapshot")?;
        let conn = index::connect(&self.index_path())?;
        let row = index::snapshot_row(&conn, &info.id)?;
        group_costs::group_costs(&conn, self.storage(), row, group_of)
    }

    /// Writes snapshot `snap` of `from` into this repository, taking from `from` only the
    /// chunks this one lacks, each checked on arrival (`copy`).
    pub fn copy_from(
        &self,
        from: &Repository,
        snap: &SnapshotInfo,
    ) -> Result<crate::store::Copied> {
        crate::store::copy::copy_snapshot(from, snap, self)
    }

    /// Refuses `from` when it is this repository (under any path).
    pub fn ensure_distinct_from(&self, from: &Repository) -> Result<()> {
        crate::store::copy::ensure_distinct(from, self)
    }

    /// For each snapshot here, the snapshot it stands for across repositories (the one it is
    /// a copy of, or itself) → its id here: what `copy` skips.
    pub fn originals(&self) -> Result<std::collections::HashMap<String, String>> {
        crate::store::copy::originals(self)
    }

    /// The snapshot `id` (a full id) stands for across repositories: the one it is a copy
    /// of, or itself.
    pub fn original_of(&self, id: &str) -> Result<String> {
        crate::store::copy::original_of(self, id)
    }

    /// Reads back and re-hashes the chunks of snapshot `id`, or of the whole repository. A
    /// verify of the whole repository records its outcome in `state/last-verify.json`.
    pub fn verify(&self, id: Option<&str>) -> Result<VerifyReport> {
        self.verify_with(id, &VerifyOptions::default())
    }

    /// `verify`, reading back only the packs `opts` chooses when the whole repository is
    /// verified (a rolling verify); only a verify that read everything is recorded as complete.
    pub fn verify_with(&self, id: Option<&str>, opts: &VerifyOptions) -> Result<VerifyReport> {
        let id = id.map(|s| self.resolve(s)).transpose()?.map(|s| s.id);
        let _lock = self.lock(LockKind::Shared, "verify")?;
        let started = chrono::Utc::now().timestamp();
        let index_path = self.index_path();
        let outcome = index::connect(&index_path).and_then(|conn| {
            verify::verify(&conn, self.storage(), &index_path, id.as_deref(), opts)
        });
        // Unfinished uploads are no damage (never part of a snapshot), but they hold space.
        // A storage that cannot list them does not fail the verify.
        let outcome = outcome.map(|mut r| {
            match pending_uploads::survey(self.storage()) {
                Ok(s) => r.notes.extend(pending_uploads::note(s)),
                Err(e) => r.notes.push(format!("unfinished uploads not listed: {e}")),
            }
            r
        });
        let complete = matches!(&outcome, Ok(r) if r.packs_skipped == 0) || outcome.is_err();
        if id.is_none() && complete {
            last_verify::record(self.storage(), &LastVerify::of(started, &outcome));
        }
        outcome
    }

    /// Replaces the index by what the pack trailers and snapshot files say. Takes the
    /// exclusive lock.
    pub fn rebuild_index(&self) -> Result<RebuildReport> {
        let lock = self.lock(LockKind::Exclusive, "rebuild the index")?;
        let mut conn = self.conn();
        let report = rebuild::rebuild(self.storage(), &mut conn, &lock)?;
        recovery::recover(self.storage(), &mut conn, &lock)?;
        Ok(report)
    }

    /// Removes snapshots (full ids or anything `resolve` accepts): their index rows, then
    /// their files. Their chunks stay until `prune`. Takes the exclusive lock. Returns how
    /// many snapshots were removed.
    pub fn forget(&self, ids: &[String]) -> Result<u64> {
        let lock = self.lock(LockKind::Exclusive, "remove snapshots")?;
        let names = ids
            .iter()
            .map(|id| self.resolve(id).map(|s| s.id))
            .collect::<Result<Vec<_>>>()?;
        self.removing(|| prune::forget(&mut self.conn(), self.storage(), &names, &lock))
    }

    /// Runs `remove` (which removes data files, under the exclusive lock); for a remote
    /// repository first tells other machines' index caches that they must be rebuilt
    /// (`store::remote`).
    fn removing<T>(&self, remove: impl FnOnce() -> Result<T>) -> Result<T> {
        let generation = if self.is_remote() {
            Some(remote::new_generation(self.storage())?)
        } else {
            None
        };
        let out = remove()?;
        if let Some(g) = generation {
            remote::write_seen(&self.root, &g)?;
        }
        Ok(out)
    }

    /// Applies a retention policy and removes the snapshots it does not keep, planning and
    /// removing in one step under the exclusive lock, so a concurrent create or forget is
    /// either wholly before the plan or wholly after the removal. A plan that would remove
    /// every snapshot of a host is refused. A dry run takes the shared lock and removes
    /// nothing. Returns the decisions (newest first per host) and how many were removed.
    pub fn forget_by_policy(&self, policy: &Policy, dry_run: bool) -> Result<(Vec<Decision>, u64)> {
        let (kind, purpose) = if dry_run {
            (LockKind::Shared, "plan which snapshots to remove")
        } else {
            (LockKind::Exclusive, "remove snapshots")
        };
        let lock = self.lock(kind, purpose)?;
        let candidates: Vec<Candidate> = self.snapshots()?.iter().map(Candidate::from).collect();
        let decisions = retention::apply(policy, &candidates)?;
        if dry_run {
            return Ok((decisions, 0));
        }
        retention::check_keeps_each_host(&decisions)?;
        let remove: Vec<String> = decisions
            .iter()
            .filter(|d| !d.keep)
            .map(|d| d.id.clone())
            .collect();
        let n = if remove.is_empty() {
            0
        } else {
            self.removing(|| prune::forget(&mut self.conn(), self.storage(), &remove, &lock))?
        };
        Ok((decisions, n))
    }

    /// Deletes packs no snapshot needs and rewrites packs that are mostly unused. Takes the
    /// exclusive lock (a dry run the shared one).
    pub fn prune(&self, opts: PruneOptions) -> Result<PruneReport> {
        let (kind, purpose) = if opts.dry_run {
            (LockKind::Shared, "estimate what prune would free")
        } else {
            (LockKind::Exclusive, "prune unused data")
        };
        let lock = self.lock(kind, purpose)?;
        let dry_run = opts.dry_run;
        let run = || {
            prune::prune(
                &mut self.conn(),
                self.storage(),
                &self.config.chunker,
                TrailerLayout::for_version(self.config.version),
                opts,
                &lock,
            )
        };
        let mut report = if dry_run { run()? } else { self.removing(run)? };
        // What killed writers left unfinished (uploads never visible as objects). The prune
        // itself is done: a storage that cannot list or abort them only earns a warning.
        match pending_uploads::abort_abandoned(self.storage(), dry_run, &lock) {
            Ok(n) => report.uploads_aborted = n,
            Err(e) => logging::warning(format!("unfinished uploads not collected: {e}")),
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Error as IoError, ErrorKind};

    use super::*;

    /// What stat says decides the message; a permission problem is not "no config.json".
    #[test]
    fn why_a_repository_does_not_open() {
        let p = Path::new("/srv/r");
        let said = |dir, config| check_opens(p, dir, config).unwrap_err().to_string();
        let denied = || IoError::from(ErrorKind::PermissionDenied);
        let missing = || IoError::from(ErrorKind::NotFound);
        assert!(said(Ok(false), Ok(())).contains("it is a file"));
        let e = said(Err(missing()), Ok(()));
        assert!(
            e.contains("run `opsi-backup init --repository /srv/r`"),
            "{e}"
        );
        let e = said(Ok(true), Err(denied()));
        assert!(
            e.contains("permission denied") && !e.contains("config.json)"),
            "{e}"
        );
        assert!(said(Err(denied()), Ok(())).contains("permission denied"));
        assert!(said(Ok(true), Err(missing())).contains("it has no config.json"));
        assert!(check_opens(p, Ok(true), Ok(())).is_ok());
    }
}
