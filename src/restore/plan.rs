//! Which members go where: the restore targets for a request (`--backends`,
//! `--configuration`), following the original's rules. Backend locations come from the
//! archived configuration when it is restored too, else from the server's current one.

use std::collections::HashSet;
use std::path::PathBuf;

use crate::archive::scan::Scan;
use crate::error::{Error, Result};
use crate::layout;
use crate::logging;
use crate::mysql::{self, MysqlConfig};
use crate::opsi::backends::{BackendConfig, BackendSet};
use crate::opsi::root::{OpsiRoot, CONF_DIR};
use crate::restore::restorer::{Dest, Target};

/// What the user asked to restore.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub backends: Vec<String>,
    pub configuration: bool,
    pub force: bool,
    /// `--new-server-id`, already validated: rename the config server after the restore.
    pub new_server_id: Option<String>,
}

/// A restored backend whose data `--new-server-id` rewrites afterwards.
#[derive(Debug, Clone)]
pub enum Renamable {
    FileBackend {
        base_dir: PathBuf,
        host_key_file: PathBuf,
        /// The settings as they were read, for messages.
        base_dir_setting: String,
        host_key_file_setting: String,
    },
    Mysql(MysqlConfig),
}

/// The targets of a restore and the backends they restore.
pub struct Plan {
    pub targets: Vec<Target>,
    pub renamable: Vec<Renamable>,
}

/// Names a setting for messages: "`baseDir` '/x' of backend file in <where it was read>".
fn setting(b: &BackendConfig, key: &str, value: &str) -> String {
    format!(
        "`{key}` '{value}' of backend {} in {}",
        b.name,
        b.file.display()
    )
}

impl Plan {
    /// The directories that will hold staged data: those of the trees and files.
    pub fn staging_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self
            .targets
            .iter()
            .filter_map(|t| match &t.dest {
                Dest::Tree(p) | Dest::File(p) => p.parent().map(PathBuf::from),
                Dest::Stream(_) => None,
            })
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }
}

fn has_prefix(present: &HashSet<String>, prefix: &str) -> bool {
    present
        .iter()
        .any(|p| p == prefix || p.starts_with(&format!("{prefix}/")))
}

/// Builds the targets. `set` holds the backend configuration that will be in force.
pub fn targets(root: &OpsiRoot, scan: &Scan, set: &BackendSet, req: &Request) -> Result<Plan> {
    let sel = set.select(&req.backends)?;
    for w in &sel.warnings {
        logging::warning(w);
    }
    let mut out = Vec::new();
    let mut renamable = Vec::new();
    if req.configuration {
        if scan.contains.configuration {
            out.push(Target {
                prefix: layout::CONF.into(),
                what: format!("the configuration directory {CONF_DIR}"),
                dest: Dest::Tree(root.conf_dir()),
            });
        } else if !req.force {
            return Err(Error::Invalid(
                "Backup file does not contain configuration data.".into(),
            ));
        }
    }
    let explicit = |kind: &str| {
        req.backends
            .iter()
            .any(|b| b.eq_ignore_ascii_case(kind) || b.eq_ignore_ascii_case("all"))
    };
    let missing = |kind: &str, has: bool| -> Result<bool> {
        if has {
            return Ok(false);
        }
        if sel.auto || req.force || !explicit(kind) {
            logging::info(format!("No backend data for {kind} - skipping."));
            return Ok(true);
        }
        Err(Error::Invalid(format!(
            "Backup file does not contain {kind} backend data."
        )))
    };

    if !sel.file.is_empty() && !missing("file", scan.contains.file)? {
        for b in &sel.file {
            let prefix = layout::file_backend(&b.name);
            if !has_prefix(&scan.present, &prefix) {
                logging::warning(format!(
                    "the archive holds no data for file backend '{}'",
                    b.name
                ));
                continue;
            }
            let base_dir = b.file_base_dir()?;
            let host_key_file = b.file_host_key_file()?;
            renamable.push(Renamable::FileBackend {
                base_dir: root.resolve(&base_dir),
                host_key_file: root.resolve(&host_key_file),
                base_dir_setting: setting(b, "baseDir", &base_dir),
                host_key_file_setting: setting(b, "hostKeyFile", &host_key_file),
            });
            out.push(Target {
                prefix,
                what: setting(b, "baseDir", &base_dir),
                dest: Dest::Tree(root.resolve(&base_dir)),
            });
            let keys = layout::file_host_keys(&b.name);
            if has_prefix(&scan.present, &keys) {
                out.push(Target {
                    prefix: keys,
                    what: setting(b, "hostKeyFile", &host_key_file),
                    dest: Dest::File(root.resolve(&host_key_file)),
                });
            }
        }
    }
    if !sel.mysql.is_empty() && !missing("mysql", scan.contains.mysql)? {
        for b in &sel.mysql {
            let prefix = layout::mysql_dump(&b.name);
            if !scan.present.contains(&prefix) {
                logging::warning(format!(
                    "the archive holds no dump for mysql backend '{}'",
                    b.name
                ));
                continue;
            }
            let s = b.mysql()?;
            let cfg = MysqlConfig {
                address: s.address,
                database: s.database,
                username: s.username,
                password: s.password,
            };
            let name = b.name.clone();
            renamable.push(Renamable::Mysql(cfg.clone()));
            out.push(Target {
                prefix,
                what: format!("mysql backend {}", b.name),
                dest: Dest::Stream(Box::new(move |dump| {
                    logging::notice(format!(
                        "Restoring mysql backend {name} into database {}",
                        cfg.database
                    ));
                    mysql::restore_from(&cfg, dump)
                })),
            });
        }
    }
    if !sel.dhcp.is_empty() && !missing("dhcp", scan.contains.dhcp)? {
        for b in &sel.dhcp {
            let prefix = layout::dhcp_backend(&b.name);
            let Some(file) = b.dhcpd_config_file()? else {
                continue;
            };
            if has_prefix(&scan.present, &prefix) {
                out.push(Target {
                    prefix,
                    what: setting(b, "dhcpdConfigFile", &file),
                    dest: Dest::File(root.resolve(&file)),
                });
            } else {
                logging::warning(format!(
                    "the archive holds no data for dhcpd backend '{}'",
                    b.name
                ));
            }
        }
    }
    if out.is_empty() {
        return Err(Error::Invalid(
            "Neither possible backend given nor configuration selected for restore.".into(),
        ));
    }
    Ok(Plan {
        targets: out,
        renamable,
    })
}
