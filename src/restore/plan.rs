//! Which members go where: the restore targets for a request (`--backends`,
//! `--configuration`), following the original's rules. Backend locations come from the
//! archived configuration when it is restored too, else from the server's current one.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::layout::{self, DataPart, Part};
use crate::logging;
use crate::mysql::{self, MysqlConfig};
use crate::opsi::backends::{BackendConfig, BackendSet};
use crate::opsi::data_dirs;
use crate::opsi::root::{OpsiRoot, CONF_DIR};
use crate::restore::backup::{Scope, Survey};
use crate::restore::restorer::{Dest, Target};

/// What the user asked to restore.
#[derive(Debug, Clone, Default)]
pub(crate) struct Request {
    pub backends: Vec<String>,
    pub configuration: bool,
    pub force: bool,
    /// `--new-server-id`, already validated: rename the config server after the restore.
    pub new_server_id: Option<String>,
    /// `--product ID`: of the depot, only this product's directory.
    pub product: Option<String>,
    /// `--target DIR`: the one bulk data part restored goes there instead of its live place.
    pub target: Option<PathBuf>,
}

/// A restored backend whose data `--new-server-id` rewrites afterwards.
#[derive(Debug, Clone)]
pub(crate) enum Renamable {
    FileBackend {
        base_dir: PathBuf,
        host_key_file: PathBuf,
        /// The settings as they were read, for messages.
        base_dir_setting: String,
        host_key_file_setting: String,
    },
    Mysql(MysqlConfig),
}

/// Which members' content `req` restores (`Scope`), known before the survey. Anything beyond
/// bulk data (`--configuration`, a backend, `auto`, `all`, a name `targets` will refuse), or
/// all four parts whole: `Whole`, read as before.
pub(crate) fn scope(req: &Request) -> Scope {
    if req.configuration || req.backends.is_empty() {
        return Scope::Whole;
    }
    let mut prefixes = Vec::new();
    for b in &req.backends {
        let Some(part) = DataPart::parse(b) else {
            return Scope::Whole;
        };
        let prefix = match (part, &req.product) {
            (DataPart::Depot, Some(p)) => format!("{}/{p}", part.prefix()),
            _ => part.prefix(),
        };
        if !prefixes.contains(&prefix) {
            prefixes.push(prefix);
        }
    }
    let every_part = DataPart::ALL.iter().all(|p| prefixes.contains(&p.prefix()));
    if every_part {
        return Scope::Whole;
    }
    Scope::Below(prefixes)
}

/// The targets of a restore and the backends they restore.
#[derive(Default)]
pub(crate) struct Plan {
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
    pub(crate) fn staging_dirs(&self) -> Vec<PathBuf> {
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

/// Builds the targets, part by part. `set` holds the backend configuration that will be in
/// force; `fqdn` is this server's name (the file backend's config server is the depot named
/// so).
pub(crate) fn targets(
    root: &OpsiRoot,
    fqdn: &str,
    survey: &Survey,
    set: &BackendSet,
    req: &Request,
) -> Result<Plan> {
    let sel = set.select(&req.backends)?;
    for w in &sel.warnings {
        logging::warning(w);
    }
    let mut plan = Plan::default();
    if req.configuration {
        configuration(root, survey, req, &mut plan)?;
    }
    let parts = Parts {
        survey,
        req,
        auto: sel.auto,
    };
    if parts.restored(Part::File, "file", &sel.file)? {
        for b in &sel.file {
            file_backend(root, survey, b, &mut plan)?;
        }
    }
    if parts.restored(Part::Mysql, "mysql", &sel.mysql)? {
        for b in &sel.mysql {
            mysql_backend(survey, b, &mut plan)?;
        }
    }
    if parts.restored(Part::Dhcp, "dhcp", &sel.dhcp)? {
        for b in &sel.dhcp {
            dhcp_backend(root, survey, b, &mut plan)?;
        }
    }
    data_parts(root, fqdn, survey, set, req, &sel.data, &mut plan)?;
    if plan.targets.is_empty() {
        return Err(Error::Invalid(
            "Neither possible backend given nor configuration selected for restore.".into(),
        ));
    }
    Ok(plan)
}

/// The checks every backend part shares: whether its selected backends are restored.
struct Parts<'a> {
    survey: &'a Survey,
    req: &'a Request,
    /// The backends were chosen by dispatch.conf, not named.
    auto: bool,
}

impl Parts<'_> {
    /// True when backends of `kind` are selected and the backup holds the part. A part it
    /// lacks is skipped, unless the user named it (or `all`) without `--force`: then an error.
    fn restored(&self, part: Part, kind: &str, selected: &[&BackendConfig]) -> Result<bool> {
        if selected.is_empty() {
            return Ok(false);
        }
        if self.survey.holds(part) {
            return Ok(true);
        }
        if self.auto || self.req.force || !self.named(kind) {
            logging::info(format!("No backend data for {kind} - skipping."));
            return Ok(false);
        }
        Err(Error::Invalid(format!(
            "Backup file does not contain {kind} backend data."
        )))
    }

    fn named(&self, kind: &str) -> bool {
        self.req
            .backends
            .iter()
            .any(|b| b.eq_ignore_ascii_case(kind) || b.eq_ignore_ascii_case("all"))
    }
}

/// The server's bulk data named in `--backends` (depot, ...): each into its live directory
/// (the same resolution as create's, `opsi::data_dirs`) or `--target`; with `--product`, the
/// depot's product directory alone. A part the snapshot lacks is an error: it was named.
fn data_parts(
    root: &OpsiRoot,
    fqdn: &str,
    survey: &Survey,
    set: &BackendSet,
    req: &Request,
    parts: &[DataPart],
    plan: &mut Plan,
) -> Result<()> {
    if parts.is_empty() {
        if req.product.is_some() || req.target.is_some() {
            return Err(Error::Invalid(
                "--product and --target restore the server's bulk data: name it with \
                 --backends depot (or workbench, repository, tftp)"
                    .into(),
            ));
        }
        return Ok(());
    }
    if req.product.is_some() && !parts.contains(&DataPart::Depot) {
        return Err(Error::Invalid(
            "--product restores a product's depot directory: it needs --backends depot".into(),
        ));
    }
    if req.target.is_some() && parts.len() > 1 {
        return Err(Error::Invalid(
            "--target takes one part: name one of depot, workbench, repository, tftp".into(),
        ));
    }
    let dirs = if req.target.is_some() {
        Vec::new()
    } else {
        data_dirs::locate(root, set, fqdn, parts)?
    };
    for &part in parts {
        let mut prefix = part.prefix();
        if !survey.holds_below(&prefix) {
            return Err(Error::Invalid(format!(
                "the backup holds no {} data (create it with --backends {} into a repository)",
                part.name(),
                part.name()
            )));
        }
        let (mut dest, mut what) = match &req.target {
            Some(t) => (t.clone(), format!("--target {}", t.display())),
            None => {
                let d = dirs.iter().find(|d| d.part == part).expect("located above");
                (d.path.clone(), d.what.clone())
            }
        };
        if let (DataPart::Depot, Some(product)) = (part, &req.product) {
            prefix = format!("{prefix}/{product}");
            if !survey.holds_below(&prefix) {
                return Err(Error::Invalid(format!(
                    "the backup's depot holds no product {product}"
                )));
            }
            dest = dest.join(product);
            what = format!("product {product} of the depot ({what})");
        }
        plan.targets.push(Target {
            prefix,
            what,
            dest: Dest::Tree(dest),
        });
    }
    Ok(())
}

/// `--configuration`: /etc/opsi; a backup without it is an error unless `--force`.
fn configuration(root: &OpsiRoot, survey: &Survey, req: &Request, plan: &mut Plan) -> Result<()> {
    if survey.holds(Part::Configuration) {
        plan.targets.push(Target {
            prefix: layout::CONF.into(),
            what: format!("the configuration directory {CONF_DIR}"),
            dest: Dest::Tree(root.conf_dir()),
        });
    } else if !req.force {
        return Err(Error::Invalid(
            "Backup file does not contain configuration data.".into(),
        ));
    }
    Ok(())
}

/// A file backend: its base directory, and its host key file when the backup holds it apart.
fn file_backend(
    root: &OpsiRoot,
    survey: &Survey,
    b: &BackendConfig,
    plan: &mut Plan,
) -> Result<()> {
    let prefix = layout::file_backend(&b.name);
    if !survey.holds_below(&prefix) {
        logging::warning(format!(
            "the archive holds no data for file backend '{}'",
            b.name
        ));
        return Ok(());
    }
    let base_dir = b.file_base_dir()?;
    let host_key_file = b.file_host_key_file()?;
    plan.renamable.push(Renamable::FileBackend {
        base_dir: root.resolve(&base_dir),
        host_key_file: root.resolve(&host_key_file),
        base_dir_setting: setting(b, "baseDir", &base_dir),
        host_key_file_setting: setting(b, "hostKeyFile", &host_key_file),
    });
    plan.targets.push(Target {
        prefix,
        what: setting(b, "baseDir", &base_dir),
        dest: Dest::Tree(root.resolve(&base_dir)),
    });
    let keys = layout::file_host_keys(&b.name);
    if survey.holds_below(&keys) {
        plan.targets.push(Target {
            prefix: keys,
            what: setting(b, "hostKeyFile", &host_key_file),
            dest: Dest::File(root.resolve(&host_key_file)),
        });
    }
    Ok(())
}

/// A mysql backend: its dump, streamed into the database.
fn mysql_backend(survey: &Survey, b: &BackendConfig, plan: &mut Plan) -> Result<()> {
    let prefix = layout::mysql_dump(&b.name);
    if !survey.present.contains(&prefix) {
        logging::warning(format!(
            "the archive holds no dump for mysql backend '{}'",
            b.name
        ));
        return Ok(());
    }
    let cfg = b.mysql()?;
    let name = b.name.clone();
    plan.renamable.push(Renamable::Mysql(cfg.clone()));
    plan.targets.push(Target {
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
    Ok(())
}

/// A dhcp backend: its dhcpd.conf, when the backend names one.
fn dhcp_backend(
    root: &OpsiRoot,
    survey: &Survey,
    b: &BackendConfig,
    plan: &mut Plan,
) -> Result<()> {
    let prefix = layout::dhcp_backend(&b.name);
    let Some(file) = b.dhcpd_config_file()? else {
        return Ok(());
    };
    if survey.holds_below(&prefix) {
        plan.targets.push(Target {
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(backends: &[&str], product: Option<&str>, configuration: bool) -> Request {
        Request {
            backends: backends.iter().map(|b| b.to_string()).collect(),
            product: product.map(str::to_string),
            configuration,
            ..Request::default()
        }
    }

    #[test]
    fn bulk_data_alone_is_read_alone() {
        let s = scope(&req(&["depot"], Some("win10"), false));
        assert_eq!(s, Scope::Below(vec!["DATA/DEPOT/win10".into()]));
        let s = scope(&req(&["TFTP", "workbench"], None, false));
        assert!(s.reads("DATA/TFTP/grub.efi") && s.reads("DATA/WORKBENCH"));
        assert!(!s.reads("DATA/DEPOT/x"));
    }

    #[test]
    fn anything_else_is_read_whole() {
        for r in [
            req(&[], None, false),
            req(&["depot"], None, true),
            req(&["depot", "file"], None, false),
            req(&["all"], None, false),
            req(&["depot", "workbench", "repository", "tftp"], None, false),
        ] {
            assert_eq!(scope(&r), Scope::Whole, "{r:?}");
        }
    }
}
