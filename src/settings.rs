//! The optional settings file `/etc/opsi/opsi-backup.toml` (under `--root`), so the nightly
//! cron line is just `opsi-backup create` plus `opsi-backup forget --prune`:
//!
//! ```toml
//! repository = "/var/backups/opsi-backup"
//! lock_wait = 3600     # seconds to wait for a repository another process holds
//!
//! [retention]          # restic's forget semantics, see retention.rs
//! keep_daily = 7
//! keep_weekly = 4
//! keep_monthly = 6
//!
//! [create]
//! backends = ["auto", "depot", "workbench", "repository", "tftp"]  # without --backends
//!
//! [exclude]            # globs for the bulk data, relative to each part's directory
//! all = ["*.part"]     # every part
//! depot = ["*/tmp/*"]  # also: workbench, repository, tftp
//! ```
//!
//! A repository on S3-compatible object storage (`repository = "s3:https://host/bucket/prefix"`)
//! may take its credentials from `[s3]`; a file holding `secret_access_key` must be readable
//! by its owner only (mode 0600), or it is refused:
//!
//! ```toml
//! cache_dir = "/var/cache/opsi-backup"   # index caches of remote repositories
//! [s3]
//! access_key_id = "GK…"
//! secret_access_key = "…"
//! region = "garage"
//! virtual_host = false   # path style (host/bucket/key) unless true
//! allow_http = false     # plain http only to loopback unless true
//! ```
//! Options and environment variables win over the file. The repository path is taken as
//! written (it is not placed under `--root`).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::opsi::root::OpsiRoot;
use crate::retention::Policy;

pub(crate) const SETTINGS_FILE: &str = "/etc/opsi/opsi-backup.toml";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub repository: Option<PathBuf>,
    /// Seconds to wait for the repository lock (the global `--lock-wait`).
    pub lock_wait: Option<u64>,
    #[serde(default)]
    pub retention: Policy,
    #[serde(default)]
    pub create: CreateSettings,
    #[serde(default)]
    pub exclude: ExcludeSettings,
    /// Where remote repositories keep their index caches (default /var/cache/opsi-backup).
    pub cache_dir: Option<PathBuf>,
    #[serde(default)]
    pub s3: S3Settings,
}

/// `[create]`: what `create` does without options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSettings {
    /// The `--backends` of a `create` that names none (empty: `auto`).
    #[serde(default)]
    pub backends: Vec<String>,
}

/// `[exclude]`: glob patterns left out of the bulk data (`source/exclude.rs`). None by
/// default: a depot holds data that exists nowhere else.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExcludeSettings {
    #[serde(default)]
    pub all: Vec<String>,
    #[serde(default)]
    pub depot: Vec<String>,
    #[serde(default)]
    pub workbench: Vec<String>,
    #[serde(default)]
    pub repository: Vec<String>,
    #[serde(default)]
    pub tftp: Vec<String>,
}

impl ExcludeSettings {
    /// The patterns for the part called `name`: `all`'s, then its own.
    pub(crate) fn for_part(&self, name: &str) -> Vec<String> {
        let own: &[String] = match name {
            "depot" => &self.depot,
            "workbench" => &self.workbench,
            "repository" => &self.repository,
            "tftp" => &self.tftp,
            _ => &[],
        };
        self.all.iter().chain(own.iter()).cloned().collect()
    }
}

/// `[s3]`: how to reach a repository on object storage. The environment
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`) wins.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub region: Option<String>,
    #[serde(default)]
    pub virtual_host: bool,
    #[serde(default)]
    pub allow_http: bool,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<hidden>"),
            )
            .field("region", &self.region)
            .field("virtual_host", &self.virtual_host)
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

impl Settings {
    /// The settings of the server at `root`; a missing file means no settings.
    pub fn load(root: &OpsiRoot) -> Result<Settings> {
        let path = root.resolve(SETTINGS_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
            Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
        };
        let settings = Settings::parse(&text, &path)?;
        if settings.s3.secret_access_key.is_some() {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .map(|m| m.permissions().mode())
                .unwrap_or(0);
            if mode & 0o077 != 0 {
                return Err(Error::Config(format!(
                    "{} holds secret_access_key but others may read it (mode {:o}); make it \
                     readable by its owner only: chmod 600 {}",
                    path.display(),
                    mode & 0o777,
                    path.display()
                )));
            }
        }
        Ok(settings)
    }

    /// The settings in `text`, read from `path` (named in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Settings> {
        toml::from_str(text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_repository_and_policy_and_rejects_typos() {
        let dir = tempfile::tempdir().unwrap();
        let root = OpsiRoot::new(dir.path());
        assert!(Settings::load(&root).unwrap().repository.is_none());
        let f = root.resolve(SETTINGS_FILE);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(
            &f,
            "repository = \"/srv/r\"\nlock_wait = 60\n[retention]\nkeep_daily = 7\nkeep_within = \"1m\"\n",
        )
        .unwrap();
        let s = Settings::load(&root).unwrap();
        assert_eq!(
            s.repository.as_deref(),
            Some(std::path::Path::new("/srv/r"))
        );
        assert_eq!(s.retention.keep_daily, Some(7));
        assert_eq!(s.lock_wait, Some(60));
        std::fs::write(
            &f,
            "[create]\nbackends = [\"auto\", \"depot\"]\n[exclude]\nall = [\"*.part\"]\ndepot = [\"*/tmp/*\"]\n",
        )
        .unwrap();
        let s = Settings::load(&root).unwrap();
        assert_eq!(s.create.backends, ["auto", "depot"]);
        assert_eq!(s.exclude.for_part("depot"), ["*.part", "*/tmp/*"]);
        assert_eq!(s.exclude.for_part("tftp"), ["*.part"]);
        std::fs::write(&f, "[retention]\nkeep_dayly = 7\n").unwrap();
        let e = Settings::load(&root).unwrap_err().to_string();
        assert!(e.contains("keep_dayly"), "{e}");
    }

    /// A secret in a file others may read is refused, and never shown.
    #[test]
    fn a_secret_needs_a_private_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = OpsiRoot::new(dir.path());
        let f = root.resolve(SETTINGS_FILE);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(
            &f,
            "repository = \"s3:https://h/b/p\"\n[s3]\naccess_key_id = \"GK1\"\nsecret_access_key = \"sekrit\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Settings::load(&root).unwrap_err().to_string();
        assert!(e.contains("chmod 600") && !e.contains("sekrit"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s = Settings::load(&root).unwrap();
        assert_eq!(s.s3.secret_access_key.as_deref(), Some("sekrit"));
        assert!(!format!("{s:?}").contains("sekrit"));
    }
}
