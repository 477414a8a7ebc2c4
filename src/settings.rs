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

impl Settings {
    /// The settings of the server at `root`; a missing file means no settings.
    pub fn load(root: &OpsiRoot) -> Result<Settings> {
        let path = root.resolve(SETTINGS_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
            Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
        };
        Settings::parse(&text, &path)
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
}
