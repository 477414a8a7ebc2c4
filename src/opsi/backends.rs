//! The backends an opsi server has configured (`/etc/opsi/backends/*.conf`), which of them
//! dispatch.conf puts in use, and which of them a `--backends` request selects.
//!
//! Loading follows python-opsi's `OpsiBackupArchive._readBackendConfiguration`: every file
//! ending in `.conf` is a backend named by its file name before the first `.`, lower-cased; two
//! files with the same name are an error; a file that cannot be read or parsed is skipped with a
//! warning. Selection follows `OpsiBackup.create` and the `backup*Backend(auto=...)` methods:
//! `all` wins over `auto`, which wins over explicit kinds; `auto` takes the dispatched backends;
//! `all` and explicit kinds take every backend of the kind and warn about those not in use.
//!
//! Deliberate difference: when dispatch.conf is missing the original fails on every backend
//! file (its dispatch list is never set) and so backs up no backend at all, silently; here every
//! backend loads, none is "in use", and a warning says why `auto` selects nothing.

use std::collections::BTreeSet;
use std::path::PathBuf;

use pyconf::{dict_get, parse_conf, system_resolver, PyValue};

use super::dispatch::DispatchConfig;
use super::root::OpsiRoot;
use crate::error::{Error, IoContext, Result};
use crate::layout::DataPart;
use crate::mysql::MysqlConfig;

/// The file backend's `baseDir` when its config does not name one.
pub(crate) const DEFAULT_FILE_BASE_DIR: &str = "/var/lib/opsi/config";
/// The file backend's `hostKeyFile` when its config does not name one.
pub(crate) const DEFAULT_HOST_KEY_FILE: &str = "/etc/opsi/pckeys";

/// The backend names `--backends` accepts (beside the data parts, `layout::DataPart`, which
/// only a repository holds and neither `auto` nor `all` includes).
pub(crate) const BACKEND_CHOICES: &[&str] = &["file", "mysql", "dhcp", "auto", "all"];

/// What a backend is, from its `module` (compared lower-cased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BackendKind {
    File,
    Mysql,
    Dhcpd,
    /// Any other module (e.g. `OpsiPXEConfd`, `JSONRPC`); never backed up. Holds the module
    /// lower-cased.
    Other(String),
}

/// BackendConfig is one `/etc/opsi/backends/<name>.conf`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BackendConfig {
    /// The file name before its first `.`, lower-cased (`MySQL.conf` -> `mysql`).
    pub name: String,
    /// The file's `module` as written (`File`, `MySQL`, `DHCPD`, ...).
    pub module: String,
    /// The file's `config` dict in file order.
    pub config: Vec<(String, PyValue)>,
    /// True when dispatch.conf uses this backend.
    pub dispatched: bool,
    /// The file it was read from (under the [`OpsiRoot`]).
    pub file: PathBuf,
}

impl BackendConfig {
    /// The kind of backend, from `module`.
    pub(crate) fn kind(&self) -> BackendKind {
        match self.module.to_lowercase().as_str() {
            "file" => BackendKind::File,
            "mysql" => BackendKind::Mysql,
            "dhcpd" => BackendKind::Dhcpd,
            other => BackendKind::Other(other.to_string()),
        }
    }

    /// The config value under `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&PyValue> {
        dict_get(&self.config, key)
    }

    fn config_error(&self, what: String) -> Error {
        Error::Config(format!(
            "backend '{}' ({}): {what}",
            self.name,
            self.file.display()
        ))
    }

    /// A string setting: `None` when absent or `None`, an error when of another type.
    fn opt_str(&self, key: &str) -> Result<Option<String>> {
        match self.get(key) {
            None | Some(PyValue::None) => Ok(None),
            Some(PyValue::Str(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.config_error(format!(
                "config key '{key}' must be a string, not {} ({other})",
                other.type_name()
            ))),
        }
    }

    fn req_str(&self, key: &str) -> Result<String> {
        self.opt_str(key)?
            .ok_or_else(|| self.config_error(format!("config key '{key}' is missing")))
    }

    /// The file backend's data directory (a server path), [`DEFAULT_FILE_BASE_DIR`] when unset.
    pub(crate) fn file_base_dir(&self) -> Result<String> {
        Ok(self
            .opt_str("baseDir")?
            .unwrap_or_else(|| DEFAULT_FILE_BASE_DIR.to_string()))
    }

    /// The file backend's host key file (a server path), [`DEFAULT_HOST_KEY_FILE`] when unset.
    pub(crate) fn file_host_key_file(&self) -> Result<String> {
        Ok(self
            .opt_str("hostKeyFile")?
            .unwrap_or_else(|| DEFAULT_HOST_KEY_FILE.to_string()))
    }

    /// The dhcpd backend's `dhcpdConfigFile` (a server path); `None` when unset or empty, in
    /// which case the original backs up nothing for this backend.
    pub(crate) fn dhcpd_config_file(&self) -> Result<Option<String>> {
        Ok(self.opt_str("dhcpdConfigFile")?.filter(|s| !s.is_empty()))
    }

    /// The MySQL backend's connection settings; every one of them must be set.
    pub(crate) fn mysql(&self) -> Result<MysqlConfig> {
        Ok(MysqlConfig {
            address: self.req_str("address")?,
            database: self.req_str("database")?,
            username: self.req_str("username")?,
            password: self.req_str("password")?,
        })
    }
}

/// BackendSet is every backend configured on a server, sorted by name.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct BackendSet {
    pub backends: Vec<BackendConfig>,
    /// Problems that did not stop loading (unreadable files, bad dispatch.conf lines).
    pub warnings: Vec<String>,
    /// True when dispatch.conf was found and read.
    pub dispatch_found: bool,
}

/// Selection is the backends a `--backends` request picks, by kind. It borrows the
/// [`BackendSet`] it was made from.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Selection<'a> {
    pub file: Vec<&'a BackendConfig>,
    pub mysql: Vec<&'a BackendConfig>,
    pub dhcp: Vec<&'a BackendConfig>,
    /// The server's bulk data asked for by name (depot, workbench, repository, tftp), in the
    /// order of `DataPart::ALL`.
    pub data: Vec<DataPart>,
    /// True when the request was `auto` (given or implied): missing backend data is skipped
    /// rather than an error on restore.
    pub auto: bool,
    /// Selected backends that dispatch.conf does not use, and kinds asked for that have none.
    pub warnings: Vec<String>,
}

#[cfg(test)]
impl Selection<'_> {
    /// True when no backend is selected.
    pub(crate) fn is_empty(&self) -> bool {
        self.file.is_empty() && self.mysql.is_empty() && self.dhcp.is_empty()
    }
}

/// Reads every backend configuration of the server at `root`. `fqdn` is what
/// `socket.getfqdn()` evaluates to in the files.
///
/// Errors: the backends directory is missing or unreadable, or two files give the same name.
pub(crate) fn load_backends(root: &OpsiRoot, fqdn: &str) -> Result<BackendSet> {
    let mut warnings = Vec::new();

    let dispatch_path = root.dispatch_conf();
    let mut dispatch_found = false;
    let mut dispatched = BTreeSet::new();
    if dispatch_path.exists() {
        match DispatchConfig::read(&dispatch_path) {
            Ok(d) => {
                dispatch_found = true;
                for (line, text) in &d.bad_lines {
                    warnings.push(format!(
                        "{} line {line}: bad dispatch entry ignored: {text}",
                        dispatch_path.display()
                    ));
                }
                dispatched = d.used_backends();
            }
            Err(e) => warnings.push(format!("could not read dispatch configuration: {e}")),
        }
    } else {
        warnings.push(format!(
            "dispatch configuration {} not found: no backend counts as in use",
            dispatch_path.display()
        ));
    }

    let dir = root.backends_dir();
    if !dir.is_dir() {
        return Err(Error::Config(format!(
            "could not read backend configuration: missing directory {}",
            dir.display()
        )));
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).path_ctx("listing", &dir)? {
        let entry = entry.path_ctx("listing", &dir)?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if file_name.ends_with(".conf") {
            files.push(file_name);
        }
    }
    files.sort();

    let mut seen: Vec<(String, String)> = Vec::new();
    let mut backends = Vec::new();
    for file_name in files {
        let name = file_name
            .split('.')
            .next()
            .unwrap_or_default()
            .to_lowercase();
        if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
            return Err(Error::Config(format!(
                "multiple backends with the same name are not supported: {first} and {file_name} \
                 in {} are both backend '{name}'",
                dir.display()
            )));
        }
        seen.push((name.clone(), file_name.clone()));

        let path = dir.join(&file_name);
        let text = match std::fs::read(&path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(t) => t,
                Err(_) => {
                    warnings.push(format!(
                        "failed to read backend config {}: not valid UTF-8; backend '{name}' skipped",
                        path.display()
                    ));
                    continue;
                }
            },
            Err(e) => {
                warnings.push(format!(
                    "failed to read backend config {}: {e}; backend '{name}' skipped",
                    path.display()
                ));
                continue;
            }
        };
        match parse_conf(&text, fqdn, &system_resolver) {
            Ok(conf) => backends.push(BackendConfig {
                dispatched: dispatched.contains(&name),
                name,
                module: conf.module,
                config: conf.config,
                file: path,
            }),
            Err(e) => warnings.push(format!(
                "failed to read backend config {}: {e}; backend '{name}' skipped",
                path.display()
            )),
        }
    }
    backends.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(BackendSet {
        backends,
        warnings,
        dispatch_found,
    })
}

impl BackendSet {
    /// The backend called `name`.
    #[cfg(test)]
    pub(crate) fn get(&self, name: &str) -> Option<&BackendConfig> {
        self.backends.iter().find(|b| b.name == name)
    }

    /// The backends a `--backends` request selects. `requested` holds items among
    /// [`BACKEND_CHOICES`] (case-insensitive); empty means `auto`.
    pub(crate) fn select(&self, requested: &[String]) -> Result<Selection<'_>> {
        let mut wanted = Vec::new();
        let mut data = Vec::new();
        for r in requested {
            let r = r.trim().to_lowercase();
            if let Some(part) = DataPart::parse(&r) {
                data.push(part);
                continue;
            }
            if !BACKEND_CHOICES.contains(&r.as_str()) {
                let data_names = DataPart::ALL.map(DataPart::name);
                return Err(Error::Invalid(format!(
                    "'{r}' is not a valid backend (choose from {}, {})",
                    BACKEND_CHOICES.join(", "),
                    data_names.join(", ")
                )));
            }
            if !wanted.contains(&r) {
                wanted.push(r);
            }
        }
        let has = |k: &str| wanted.iter().any(|w| w == k);
        let all = has("all");
        // Only data parts named: none of the backends, as `--backends file` takes no other.
        let auto = !all && ((wanted.is_empty() && data.is_empty()) || has("auto"));
        data.sort();
        data.dedup();

        let mut sel = Selection {
            auto,
            data,
            ..Selection::default()
        };
        for (kind, label) in [
            (BackendKind::File, "file"),
            (BackendKind::Mysql, "mysql"),
            (BackendKind::Dhcpd, "dhcp"),
        ] {
            let asked = all || auto || has(label);
            if !asked {
                continue;
            }
            let mut picked = Vec::new();
            for b in self.backends.iter().filter(|b| b.kind() == kind) {
                if auto && !b.dispatched {
                    continue;
                }
                if !b.dispatched {
                    sel.warnings.push(format!(
                        "backend '{}' is selected although it is currently not in use",
                        b.name
                    ));
                }
                picked.push(b);
            }
            if picked.is_empty() && !all && !auto {
                sel.warnings
                    .push(format!("no {label} backend is configured"));
            }
            match kind {
                BackendKind::File => sel.file = picked,
                BackendKind::Mysql => sel.mysql = picked,
                _ => sel.dhcp = picked,
            }
        }
        Ok(sel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const FILE_CONF: &str = "module = 'File'\nconfig = {\"baseDir\": u\"/var/lib/opsi/config\", \"hostKeyFile\": u\"/etc/opsi/pckeys\"}\n";
    const MYSQL_CONF: &str = "module = 'MySQL'\nconfig = {\n    \"address\": u\"localhost\",\n    \"database\": u\"opsi\",\n    \"username\": u\"opsi\",\n    \"password\": u\"secret\",\n}\n";
    const DHCPD_CONF: &str = "import socket\nmodule = 'DHCPD'\nconfig = {\n    \"dhcpdOnDepot\": False,\n    \"dhcpdConfigFile\": u\"/etc/dhcp/dhcpd.conf\",\n    \"defaultClientParameters\": {\"next-server\": socket.getfqdn()},\n}\n";

    fn server(files: &[(&str, &str)], dispatch: Option<&str>) -> (tempfile::TempDir, OpsiRoot) {
        let dir = tempfile::tempdir().unwrap();
        let root = OpsiRoot::new(dir.path());
        fs::create_dir_all(root.backends_dir()).unwrap();
        for (name, text) in files {
            fs::write(root.backends_dir().join(name), text).unwrap();
        }
        if let Some(d) = dispatch {
            fs::create_dir_all(root.dispatch_conf().parent().unwrap()).unwrap();
            fs::write(root.dispatch_conf(), d).unwrap();
        }
        (dir, root)
    }

    fn standard(dispatch: &str) -> (tempfile::TempDir, BackendSet) {
        let (dir, root) = server(
            &[
                ("file.conf", FILE_CONF),
                ("mysql.conf", MYSQL_CONF),
                ("dhcpd.conf", DHCPD_CONF),
                (
                    "opsipxeconfd.conf",
                    "module = 'OpsiPXEConfd'\nconfig = {}\n",
                ),
            ],
            Some(dispatch),
        );
        let set = load_backends(&root, "opsi.example.org").unwrap();
        (dir, set)
    }

    fn names(v: &[&BackendConfig]) -> Vec<String> {
        v.iter().map(|b| b.name.clone()).collect()
    }

    fn req(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn loads_and_marks_dispatched() {
        let (_d, set) = standard("backend_.* : mysql, opsipxeconfd, dhcpd\n.* : MySQL\n");
        assert!(set.dispatch_found);
        assert!(set.warnings.is_empty(), "{:?}", set.warnings);
        let names: Vec<&str> = set.backends.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["dhcpd", "file", "mysql", "opsipxeconfd"]);
        assert!(!set.get("file").unwrap().dispatched);
        assert!(set.get("mysql").unwrap().dispatched);
        assert!(set.get("dhcpd").unwrap().dispatched);
        let dhcpd = set.get("dhcpd").unwrap();
        assert_eq!(dhcpd.kind(), BackendKind::Dhcpd);
        assert_eq!(
            dhcpd.dhcpd_config_file().unwrap().as_deref(),
            Some("/etc/dhcp/dhcpd.conf")
        );
        assert_eq!(
            dhcpd
                .get("defaultClientParameters")
                .unwrap()
                .get("next-server"),
            Some(&PyValue::Str("opsi.example.org".into()))
        );
        assert_eq!(
            set.get("opsipxeconfd").unwrap().kind(),
            BackendKind::Other("opsipxeconfd".into())
        );
        assert!(dhcpd.file.ends_with("etc/opsi/backends/dhcpd.conf"));
    }

    #[test]
    fn typed_accessors_and_defaults() {
        let (_d, set) = standard(".* : file\n");
        let file = set.get("file").unwrap();
        assert_eq!(file.kind(), BackendKind::File);
        assert_eq!(file.file_base_dir().unwrap(), "/var/lib/opsi/config");
        assert_eq!(file.file_host_key_file().unwrap(), "/etc/opsi/pckeys");
        let m = set.get("mysql").unwrap().mysql().unwrap();
        assert_eq!(
            (
                m.address.as_str(),
                m.database.as_str(),
                m.username.as_str(),
                m.password.as_str()
            ),
            ("localhost", "opsi", "opsi", "secret")
        );
        assert!(!format!("{m:?}").contains("secret"));

        let bare = BackendConfig {
            name: "file".into(),
            module: "FILE".into(),
            config: vec![("baseDir".into(), PyValue::None)],
            dispatched: true,
            file: PathBuf::from("/etc/opsi/backends/file.conf"),
        };
        assert_eq!(bare.kind(), BackendKind::File);
        assert_eq!(bare.file_base_dir().unwrap(), DEFAULT_FILE_BASE_DIR);
        assert_eq!(bare.file_host_key_file().unwrap(), DEFAULT_HOST_KEY_FILE);
        assert_eq!(bare.dhcpd_config_file().unwrap(), None);
        let e = bare.mysql().unwrap_err().to_string();
        assert!(
            e.contains("/etc/opsi/backends/file.conf") && e.contains("'address'"),
            "{e}"
        );

        let wrong = BackendConfig {
            config: vec![
                ("baseDir".into(), PyValue::Int(3)),
                ("dhcpdConfigFile".into(), PyValue::Str(String::new())),
            ],
            ..bare
        };
        let e = wrong.file_base_dir().unwrap_err().to_string();
        assert!(e.contains("must be a string"), "{e}");
        assert_eq!(wrong.dhcpd_config_file().unwrap(), None);
    }

    #[test]
    fn unparsable_file_is_a_warning_naming_file_and_line() {
        let (_d, root) = server(
            &[
                ("file.conf", FILE_CONF),
                (
                    "broken.conf",
                    "module = 'MySQL'\nconfig = {\n  'a': 1\n  'b': 2}\n",
                ),
                ("notes.txt", "not a backend"),
            ],
            Some(".* : file\n"),
        );
        fs::write(
            root.backends_dir().join("latin1.conf"),
            b"module = '\xe9'\n",
        )
        .unwrap();
        let set = load_backends(&root, "h").unwrap();
        assert_eq!(set.backends.len(), 1);
        assert_eq!(set.warnings.len(), 2, "{:?}", set.warnings);
        assert!(set.warnings[0].contains("broken.conf") && set.warnings[0].contains("line 4"));
        assert!(set.warnings[1].contains("latin1.conf") && set.warnings[1].contains("UTF-8"));
    }

    #[test]
    fn name_collision_is_an_error() {
        let (_d, root) = server(
            &[("file.conf", FILE_CONF), ("File.old.conf", FILE_CONF)],
            Some(".* : file\n"),
        );
        let e = load_backends(&root, "h").unwrap_err();
        assert!(matches!(e, Error::Config(_)));
        assert!(e.to_string().contains("same name"), "{e}");
    }

    #[test]
    fn missing_backends_dir_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_backends(&OpsiRoot::new(dir.path()), "h").unwrap_err();
        assert!(matches!(e, Error::Config(_)));
        assert!(e.to_string().contains("etc/opsi/backends"), "{e}");
    }

    #[test]
    fn missing_dispatch_conf_dispatches_nothing() {
        let (_d, root) = server(
            &[("file.conf", FILE_CONF), ("mysql.conf", MYSQL_CONF)],
            None,
        );
        let set = load_backends(&root, "h").unwrap();
        assert!(!set.dispatch_found);
        assert_eq!(set.backends.len(), 2);
        assert!(set.backends.iter().all(|b| !b.dispatched));
        assert!(
            set.warnings[0].contains("dispatch.conf"),
            "{:?}",
            set.warnings
        );
        let sel = set.select(&[]).unwrap();
        assert!(sel.auto && sel.is_empty());
    }

    #[test]
    fn bad_dispatch_lines_are_warnings() {
        let (_d, set) = standard("garbage\n.* : mysql\n");
        assert_eq!(set.warnings.len(), 1);
        assert!(set.warnings[0].contains("line 1"), "{:?}", set.warnings);
        assert!(set.get("mysql").unwrap().dispatched);
    }

    #[test]
    fn select_auto_takes_dispatched_only() {
        let (_d, set) = standard(".* : mysql, dhcpd\n");
        for r in [req(&[]), req(&["auto"]), req(&["AUTO", "file"])] {
            let sel = set.select(&r).unwrap();
            assert!(sel.auto);
            assert!(sel.file.is_empty());
            assert_eq!(names(&sel.mysql), ["mysql"]);
            assert_eq!(names(&sel.dhcp), ["dhcpd"]);
            assert!(sel.warnings.is_empty());
        }
    }

    #[test]
    fn select_all_takes_every_kind_and_warns_about_unused() {
        let (_d, set) = standard(".* : mysql\n");
        let sel = set.select(&req(&["all", "auto"])).unwrap();
        assert!(!sel.auto);
        assert_eq!(names(&sel.file), ["file"]);
        assert_eq!(names(&sel.mysql), ["mysql"]);
        assert_eq!(names(&sel.dhcp), ["dhcpd"]);
        assert_eq!(sel.warnings.len(), 2);
        assert!(sel.warnings.iter().any(|w| w.contains("'file'")));
        assert!(sel.warnings.iter().any(|w| w.contains("'dhcpd'")));
    }

    #[test]
    fn select_explicit_kinds() {
        let (_d, set) = standard(".* : mysql\n");
        let sel = set.select(&req(&["file", " Mysql "])).unwrap();
        assert!(!sel.auto);
        assert_eq!(names(&sel.file), ["file"]);
        assert_eq!(names(&sel.mysql), ["mysql"]);
        assert!(sel.dhcp.is_empty());
        assert_eq!(
            sel.warnings,
            ["backend 'file' is selected although it is currently not in use"]
        );
    }

    #[test]
    fn select_kind_without_backend_warns() {
        let (_d, root) = server(&[("file.conf", FILE_CONF)], Some(".* : file\n"));
        let set = load_backends(&root, "h").unwrap();
        let sel = set.select(&req(&["dhcp"])).unwrap();
        assert!(sel.is_empty());
        assert_eq!(sel.warnings, ["no dhcp backend is configured"]);
    }

    /// The data parts are opt-in by name: `auto` and `all` keep the original's meaning.
    #[test]
    fn data_parts_are_named_never_implied() {
        let (_d, set) = standard(".* : mysql\n");
        for r in [req(&[]), req(&["auto"]), req(&["all"])] {
            assert!(set.select(&r).unwrap().data.is_empty(), "{r:?}");
        }
        let sel = set.select(&req(&["tftp", "DEPOT", "depot"])).unwrap();
        assert_eq!(sel.data, [DataPart::Depot, DataPart::Tftp]);
        assert!(!sel.auto && sel.is_empty(), "no backend besides");
        let sel = set.select(&req(&["auto", "workbench"])).unwrap();
        assert!(sel.auto);
        assert_eq!(names(&sel.mysql), ["mysql"]);
        assert_eq!(sel.data, [DataPart::Workbench]);
    }

    #[test]
    fn select_rejects_unknown_names() {
        let (_d, set) = standard(".* : mysql\n");
        let e = set.select(&req(&["file", "ldap"])).unwrap_err();
        assert!(matches!(e, Error::Invalid(_)));
        assert!(
            e.to_string().starts_with("'ldap' is not a valid backend"),
            "{e}"
        );
        // `dhcpd` is the module, `dhcp` the backend choice.
        assert!(set.select(&req(&["dhcpd"])).is_err());
    }
}
