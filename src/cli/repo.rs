//! What the repository commands share: opening the repository the options name and telling
//! an archive argument from a snapshot argument.

use std::path::{Path, PathBuf};

use crate::cli::{repo_password, Global};
use crate::error::{Error, Result};
use crate::store::{Location, Repository, S3Address, S3Options};

pub(super) fn repository_path(g: &Global) -> Result<PathBuf> {
    g.repository.clone().ok_or_else(|| {
        Error::Invalid(
            "no repository given: use --repository DIR or set OPSI_BACKUP_REPOSITORY".into(),
        )
    })
}

/// Opens the repository of the options; an encrypted one with the password of
/// `--password-file` / `OPSI_BACKUP_PASSWORD_FILE` or a prompt.
pub(super) fn open(g: &Global) -> Result<Repository> {
    Repository::open_at_with(&location(g)?, &|shown| password(g, shown))
}

/// The password of the repository of the options (`repo_password::existing`).
pub(super) fn password(g: &Global, shown: &str) -> Result<crate::store::RepoPassword> {
    repo_password::existing(
        g.password_file.as_ref(),
        shown,
        "--password-file",
        "OPSI_BACKUP_PASSWORD_FILE",
    )
}

/// `open` for `rebuild-index`: a damaged index is moved aside instead of refused.
pub(super) fn open_for_rebuild(g: &Global) -> Result<Repository> {
    Repository::open_for_rebuild_at(&location(g)?, &|shown| password(g, shown))
}

/// Where the repository of the options lies.
pub(super) fn location(g: &Global) -> Result<Location> {
    location_of(g, &repository_path(g)?)
}

/// Where the repository `given` (a directory or an `s3:` address) lies. The credentials of an
/// S3 address come from the environment (`AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`,
/// as a pair) or else from `[s3]` of the settings file, never from the command line.
pub(super) fn location_of(g: &Global, given: &Path) -> Result<Location> {
    let text = given.to_string_lossy();
    if !S3Address::is_s3(&text) {
        return Ok(Location::Local(given.to_path_buf()));
    }
    let address = S3Address::parse(&text)?;
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let yes = |k: &str| env(k).is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    let st = &g.settings.s3;
    let (access_key_id, secret_access_key) = match env("AWS_ACCESS_KEY_ID") {
        Some(id) => (id, env("AWS_SECRET_ACCESS_KEY").unwrap_or_default()),
        None => (
            st.access_key_id.clone().unwrap_or_default(),
            st.secret_access_key.clone().unwrap_or_default(),
        ),
    };
    let options = S3Options {
        access_key_id,
        secret_access_key,
        region: env("AWS_DEFAULT_REGION")
            .or_else(|| env("AWS_REGION"))
            .or_else(|| st.region.clone())
            .unwrap_or_else(|| "us-east-1".into()),
        virtual_host: st.virtual_host || yes("OPSI_BACKUP_S3_VIRTUAL_HOST"),
        allow_http: st.allow_http || yes("OPSI_BACKUP_S3_ALLOW_HTTP"),
    };
    let cache_base = env("OPSI_BACKUP_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| g.settings.cache_dir.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE_DIR));
    Ok(Location::S3 {
        address,
        options,
        cache_base,
    })
}

/// Where remote repositories keep their index caches unless told otherwise.
pub(super) const DEFAULT_CACHE_DIR: &str = "/var/cache/opsi-backup";

/// An argument names an archive when it is an existing file, or when no repository is set;
/// otherwise it names a snapshot (`latest` or an id prefix).
pub(super) fn is_archive(g: &Global, arg: &Path) -> bool {
    g.repository.is_none() || arg.is_file()
}

/// Refuses an archive argument that names no file but a snapshot (`latest`, hex digits) when
/// no repository is set: the missing repository is the cause, not an archive that cannot be
/// opened. Other missing files are left to the archive's own "cannot open archive" error.
pub(super) fn ensure_not_snapshot(g: &Global, arg: &Path) -> Result<()> {
    if g.repository.is_some() || arg.exists() {
        return Ok(());
    }
    let s = arg.to_string_lossy();
    let snapshot_like = s == "latest"
        || (!s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit()));
    if !snapshot_like {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "{s} is no archive file here, and no repository is given to look for a snapshot {s} in: \
         give it with --repository DIR (or OPSI_BACKUP_REPOSITORY, or `repository` in {})",
        crate::settings::SETTINGS_FILE
    )))
}
