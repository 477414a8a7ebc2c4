//! Where the server's bulk data lies, from its own configuration:
//! - depot, workbench, package repository: the config server's `depotLocalUrl`,
//!   `workbenchLocalUrl`, `repositoryLocalUrl`. With a file backend in use (dispatch.conf),
//!   from `<baseDir>/depots/<config server>.ini`, section `[depotserver]`, keys
//!   `depotlocalurl`, `workbenchlocalurl`, `repositorylocalurl` (older files:
//!   `[depotshare]`/`[workbench]`/`[repository]`, key `localurl`); the config server is chosen
//!   by `opsi::config_server::find_config_server`, the rule `--new-server-id` uses. Else, with
//!   a MySQL backend in use, from its HOST table (`type = 'OpsiConfigserver'`).
//! - TFTP: derived from opsipxeconfd's `pxe config dir` in /etc/opsi/opsipxeconfd.conf
//!   (`key = value` lines, no sections): the path up to the directory below a `tftpboot`
//!   component (`/tftpboot/opsi/opsi-linux-bootimage/cfg` -> `/tftpboot/opsi`,
//!   `/var/lib/tftpboot/opsi/pxelinux.cfg` -> `/var/lib/tftpboot/opsi`); without such a
//!   component, the setting's directory less a trailing `opsi-linux-bootimage/cfg` or
//!   `pxelinux.cfg`.
//!
//! A missing value takes opsi's default ([`DEFAULTS`]). Values are untrusted: only `file://`
//! URLs of absolute paths are accepted, and the path, resolved under the root, must pass
//! `confined` (inside the root, not a system directory); a refusal names the setting and
//! the file it came from.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::layout::DataPart;
use crate::logging;
use crate::mysql::run_sql;
use crate::opsi::backends::{BackendKind, BackendSet};
use crate::opsi::config_server::{depot_ids, find_config_server};
use crate::opsi::confined::confined;
use crate::opsi::root::OpsiRoot;

/// opsi's default locations, when the configuration names none.
pub(crate) const DEFAULTS: [(DataPart, &str); 4] = [
    (DataPart::Depot, "/var/lib/opsi/depot"),
    (DataPart::Workbench, "/var/lib/opsi/workbench"),
    (DataPart::Repository, "/var/lib/opsi/repository"),
    (DataPart::Tftp, "/tftpboot/opsi"),
];

/// opsipxeconfd's configuration, where the TFTP root is derived from.
pub(crate) const PXE_CONF: &str = "/etc/opsi/opsipxeconfd.conf";

/// A data directory of the server: where it lies and what said so.
#[derive(Debug, Clone)]
pub(crate) struct DataDir {
    pub part: DataPart,
    /// The directory, resolved under the root (symlinks followed) and confined.
    pub path: PathBuf,
    /// What decided it, for messages: "`depotLocalUrl` 'file:///x' in <file>".
    pub what: String,
}

/// One value as read from the configuration.
#[derive(Debug, Clone)]
struct Setting {
    key: &'static str,
    value: String,
    /// The file (or table) it was read from.
    from: String,
}

impl Setting {
    fn describe(&self) -> String {
        format!("`{}` '{}' in {}", self.key, self.value, self.from)
    }
}

/// The directories of `parts` on the server at `root`. `set` is its backend configuration,
/// `fqdn` its name (the file backend's config server is the depot named so).
pub(crate) fn locate(
    root: &OpsiRoot,
    set: &BackendSet,
    fqdn: &str,
    parts: &[DataPart],
) -> Result<Vec<DataDir>> {
    if parts.is_empty() {
        return Ok(Vec::new());
    }
    let urls = if parts.iter().any(|p| *p != DataPart::Tftp) {
        server_urls(root, set, fqdn)?
    } else {
        Vec::new()
    };
    let mut out = Vec::new();
    for &part in parts {
        let (setting, path) = if part == DataPart::Tftp {
            tftp_root(root)?
        } else {
            match urls.iter().find(|(p, _)| *p == part) {
                Some((_, s)) => (Some(s.clone()), local_path(s)?),
                None => (None, default_of(part).to_string()),
            }
        };
        let what = match &setting {
            Some(s) => s.describe(),
            None => format!("the default {} location {path}", part.name()),
        };
        let real_root = std::fs::canonicalize(root.path()).map_err(|e| {
            Error::Config(format!(
                "cannot resolve the root {}: {e}",
                root.path().display()
            ))
        })?;
        let raw = root.resolve(&path);
        let real = confined(&real_root, &raw).map_err(|r| {
            let (real, why) = r.describe(&raw);
            Error::Config(format!(
                "the {} directory refused: {what} ({}) {why}",
                part.name(),
                real.display()
            ))
        })?;
        out.push(DataDir {
            part,
            path: real,
            what,
        });
    }
    Ok(out)
}

fn default_of(part: DataPart) -> &'static str {
    DEFAULTS
        .iter()
        .find(|(p, _)| *p == part)
        .map(|(_, d)| *d)
        .expect("every part has a default")
}

/// The path of a `file://` URL; anything else is refused, naming the setting.
fn local_path(s: &Setting) -> Result<String> {
    let path = s
        .value
        .strip_prefix("file://")
        .filter(|p| p.starts_with('/'))
        .ok_or_else(|| {
            Error::Config(format!(
                "{}: only file:// URLs of an absolute path are accepted",
                s.describe()
            ))
        })?;
    let path = path.trim_end_matches('/');
    Ok(if path.is_empty() { "/" } else { path }.to_string())
}

/// The config server's local URLs: from the file backend in use, else the MySQL backend in
/// use, else none (the defaults, with a notice).
fn server_urls(root: &OpsiRoot, set: &BackendSet, fqdn: &str) -> Result<Vec<(DataPart, Setting)>> {
    let in_use = |kind: BackendKind| {
        set.backends
            .iter()
            .filter(move |b| b.kind() == kind && b.dispatched)
    };
    for b in in_use(BackendKind::File) {
        let base = root.resolve(b.file_base_dir()?);
        let depots = depot_ids(&base)?;
        if depots.is_empty() {
            continue;
        }
        let id = find_config_server(&base, &depots, Some(fqdn), "")?;
        let ini = base.join("depots").join(format!("{id}.ini"));
        let text = std::fs::read(&ini)
            .map_err(|e| Error::io(format!("cannot read {}", ini.display()), e))?;
        return Ok(from_depot_ini(&String::from_utf8_lossy(&text), &ini));
    }
    if let Some(b) = in_use(BackendKind::Mysql).next() {
        let cfg = b.mysql()?;
        // Databases made before opsi 4.1 have no workbenchLocalUrl: a column the table lacks
        // reads as empty (the default is taken) instead of failing the query.
        let columns = run_sql(
            &cfg,
            Some(&cfg.database),
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'HOST';\n",
        )?;
        let has = |c: &str| columns.lines().any(|l| l.trim().eq_ignore_ascii_case(c));
        let select: Vec<String> = URL_KEYS
            .iter()
            .map(|(_, column, _, _)| {
                if has(column) {
                    format!("HEX(IFNULL({column}, ''))")
                } else {
                    "''".to_string()
                }
            })
            .collect();
        let out = run_sql(
            &cfg,
            Some(&cfg.database),
            &format!(
                "SELECT {} FROM HOST WHERE type = 'OpsiConfigserver';\n",
                select.join(", ")
            ),
        )?;
        let from = format!(
            "the HOST table of mysql backend {} ({})",
            b.name, cfg.database
        );
        return from_host_rows(&out, &from);
    }
    logging::notice(
        "no file or mysql backend in use: the depot, workbench and repository are taken at \
         opsi's default locations",
    );
    Ok(Vec::new())
}

const URL_KEYS: [(DataPart, &str, &str, &str); 3] = [
    (
        DataPart::Depot,
        "depotLocalUrl",
        "depotlocalurl",
        "depotshare",
    ),
    (
        DataPart::Workbench,
        "workbenchLocalUrl",
        "workbenchlocalurl",
        "workbench",
    ),
    (
        DataPart::Repository,
        "repositoryLocalUrl",
        "repositorylocalurl",
        "repository",
    ),
];

/// The local URLs of a depot ini file (`ini`, named in messages).
fn from_depot_ini(text: &str, ini: &Path) -> Vec<(DataPart, Setting)> {
    let mut section = String::new();
    let mut found: Vec<(DataPart, Setting, bool)> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_lowercase();
            continue;
        }
        let Some(at) = line.find(['=', ':']) else {
            continue;
        };
        let (key, value) = (line[..at].trim().to_lowercase(), line[at + 1..].trim());
        for (part, name, flat, old_section) in URL_KEYS {
            let primary = section == "depotserver" && key == flat;
            let legacy = section == old_section && key == "localurl";
            if value.is_empty() || !(primary || legacy) {
                continue;
            }
            let setting = Setting {
                key: name,
                value: value.to_string(),
                from: ini.display().to_string(),
            };
            match found.iter_mut().find(|(p, _, _)| *p == part) {
                // `[depotserver]` wins over the older sections.
                Some(f) if primary || !f.2 => *f = (part, setting, primary),
                Some(_) => {}
                None => found.push((part, setting, primary)),
            }
        }
    }
    found.into_iter().map(|(p, s, _)| (p, s)).collect()
}

/// The local URLs of the one config server row (`HEX` columns, tab-separated).
fn from_host_rows(out: &str, from: &str) -> Result<Vec<(DataPart, Setting)>> {
    let rows: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    let [row] = rows.as_slice() else {
        return Err(Error::Config(format!(
            "{from}: {} hosts of type OpsiConfigserver, expected one",
            rows.len()
        )));
    };
    let mut found = Vec::new();
    for ((part, name, _, _), field) in URL_KEYS.into_iter().zip(row.split('\t')) {
        let bytes = hex::decode(field.trim())
            .map_err(|_| Error::Mysql(format!("unexpected output from mysql: {field:?}")))?;
        let value = String::from_utf8_lossy(&bytes).trim().to_string();
        if !value.is_empty() {
            found.push((
                part,
                Setting {
                    key: name,
                    value,
                    from: from.to_string(),
                },
            ));
        }
    }
    Ok(found)
}

/// The TFTP root from opsipxeconfd.conf, the default when the file or setting is missing.
fn tftp_root(root: &OpsiRoot) -> Result<(Option<Setting>, String)> {
    let file = root.resolve(PXE_CONF);
    let text = match std::fs::read(&file) {
        Ok(t) => String::from_utf8_lossy(&t).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((None, default_of(DataPart::Tftp).into()))
        }
        Err(e) => return Err(Error::io(format!("cannot read {}", file.display()), e)),
    };
    let value = text.lines().map(str::trim).find_map(|l| {
        if l.starts_with(['#', ';']) {
            return None;
        }
        let (k, v) = l.split_once('=')?;
        (k.trim().eq_ignore_ascii_case("pxe config dir")).then(|| v.trim().to_string())
    });
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok((None, default_of(DataPart::Tftp).into()));
    };
    let setting = Setting {
        key: "pxe config dir",
        value,
        from: file.display().to_string(),
    };
    if !setting.value.starts_with('/') {
        return Err(Error::Config(format!(
            "{}: not an absolute path",
            setting.describe()
        )));
    }
    let path = tftp_of_pxe_dir(&setting.value);
    Ok((Some(setting), path))
}

/// The TFTP root holding opsipxeconfd's `pxe config dir` (see the module comment).
fn tftp_of_pxe_dir(dir: &str) -> String {
    let parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    if let Some(i) = parts.iter().position(|p| *p == "tftpboot") {
        if i + 1 < parts.len() {
            return format!("/{}", parts[..=i + 1].join("/"));
        }
    }
    let trimmed = dir.trim_end_matches('/');
    for tail in ["/opsi-linux-bootimage/cfg", "/pxelinux.cfg"] {
        if let Some(head) = trimmed.strip_suffix(tail) {
            return head.to_string();
        }
    }
    trimmed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tftp_root_of_the_known_layouts() {
        for (pxe, root) in [
            ("/tftpboot/opsi/opsi-linux-bootimage/cfg", "/tftpboot/opsi"),
            (
                "/var/lib/tftpboot/opsi/pxelinux.cfg",
                "/var/lib/tftpboot/opsi",
            ),
            ("/tftpboot/linux/pxelinux.cfg", "/tftpboot/linux"),
            ("/srv/tftp/opsi/opsi-linux-bootimage/cfg", "/srv/tftp/opsi"),
            ("/srv/boot/cfg/", "/srv/boot/cfg"),
        ] {
            assert_eq!(tftp_of_pxe_dir(pxe), root, "{pxe}");
        }
    }

    #[test]
    fn depot_ini_depotserver_section_wins() {
        let ini = "[depotshare]\nlocalurl = file:///old/depot\n[depotserver]\n\
                   DepotLocalUrl = file:///var/lib/opsi/depot\nrepositorylocalurl =\n\
                   [workbench]\nlocalurl = file:///srv/wb\n";
        let got = from_depot_ini(ini, Path::new("x.ini"));
        let of = |p: DataPart| {
            got.iter()
                .find(|(q, _)| *q == p)
                .map(|(_, s)| s.value.clone())
        };
        assert_eq!(
            of(DataPart::Depot).as_deref(),
            Some("file:///var/lib/opsi/depot")
        );
        assert_eq!(of(DataPart::Workbench).as_deref(), Some("file:///srv/wb"));
        assert_eq!(of(DataPart::Repository), None);
    }

    #[test]
    fn only_file_urls() {
        let s = |v: &str| Setting {
            key: "depotLocalUrl",
            value: v.into(),
            from: "f.ini".into(),
        };
        assert_eq!(
            local_path(&s("file:///var/lib/opsi/depot/")).unwrap(),
            "/var/lib/opsi/depot"
        );
        for bad in [
            "smb://server/opsi_depot",
            "file://host/x",
            "/var/lib/opsi/depot",
        ] {
            let e = local_path(&s(bad)).unwrap_err().to_string();
            assert!(e.contains("`depotLocalUrl`") && e.contains("f.ini"), "{e}");
        }
    }

    #[test]
    fn host_rows_are_hex() {
        let row = format!(
            "{}\t\t{}\n",
            hex::encode("file:///d"),
            hex::encode("file:///r")
        );
        let got = from_host_rows(&row, "HOST").unwrap();
        assert_eq!(got.len(), 2);
        assert!(from_host_rows("", "HOST").is_err());
    }
}
