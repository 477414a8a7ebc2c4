//! `OpsiRoot`: where the opsi server's file system lives. `/` is the live server; any other
//! directory is a server tree mounted or unpacked elsewhere (tests, rescue systems). Every
//! absolute opsi path (`/etc/opsi/...`, a backend's `baseDir`) goes through [`OpsiRoot::resolve`]
//! before it is touched.

use std::path::{Component, Path, PathBuf};

/// The opsi configuration directory, archived as `CONTENT/CONF`.
pub(crate) const CONF_DIR: &str = "/etc/opsi";
/// The directory of backend configuration files (`<name>.conf`).
pub(crate) const BACKENDS_DIR: &str = "/etc/opsi/backends";
/// The backend dispatch configuration.
pub(crate) const DISPATCH_CONF: &str = "/etc/opsi/backendManager/dispatch.conf";

/// OpsiRoot maps absolute paths of an opsi server onto the directory that holds its tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpsiRoot {
    root: PathBuf,
}

impl OpsiRoot {
    /// A server whose `/` is `root`. `"/"` is the live system.
    pub fn new(root: impl Into<PathBuf>) -> OpsiRoot {
        OpsiRoot { root: root.into() }
    }

    /// The live system (`/`).
    pub fn live() -> OpsiRoot {
        OpsiRoot::new("/")
    }

    /// The directory that stands for the server's `/`.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// True when the root is the running system's `/` (so host name, DNS and installed
    /// packages of this machine describe the server).
    pub fn is_live(&self) -> bool {
        self.root
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::CurDir))
            && self.root.has_root()
    }

    /// The place of the server path `abs` under the root: the root joined with `abs` stripped of
    /// its leading `/`. A relative `abs` is taken as relative to the server's `/`. The result is
    /// lexical only; `..` components are kept as they are (callers resolving untrusted paths
    /// must check them themselves).
    pub fn resolve(&self, abs: impl AsRef<Path>) -> PathBuf {
        let rel: PathBuf = abs
            .as_ref()
            .components()
            .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
            .collect();
        if rel.as_os_str().is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }

    /// The server path (starting with `/`) of `p`, a path under the root; `None` when `p` does
    /// not lie under the root or is not valid UTF-8.
    pub fn unresolve(&self, p: &Path) -> Option<String> {
        let rel = p.strip_prefix(&self.root).ok()?;
        let rel = rel.to_str()?;
        Some(format!("/{}", rel.trim_start_matches('/')))
    }

    /// `/etc/opsi` under the root.
    pub fn conf_dir(&self) -> PathBuf {
        self.resolve(CONF_DIR)
    }

    /// `/etc/opsi/backends` under the root.
    pub fn backends_dir(&self) -> PathBuf {
        self.resolve(BACKENDS_DIR)
    }

    /// `/etc/opsi/backendManager/dispatch.conf` under the root.
    pub fn dispatch_conf(&self) -> PathBuf {
        self.resolve(DISPATCH_CONF)
    }
}

impl Default for OpsiRoot {
    fn default() -> OpsiRoot {
        OpsiRoot::live()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_root_resolves_to_itself() {
        let r = OpsiRoot::live();
        assert!(r.is_live());
        assert_eq!(
            r.resolve("/etc/opsi/backends"),
            PathBuf::from("/etc/opsi/backends")
        );
        assert_eq!(r.dispatch_conf(), PathBuf::from(DISPATCH_CONF));
        assert_eq!(r.resolve("/"), PathBuf::from("/"));
    }

    #[test]
    fn other_root_prefixes_paths() {
        let r = OpsiRoot::new("/tmp/srv");
        assert!(!r.is_live());
        assert_eq!(r.conf_dir(), PathBuf::from("/tmp/srv/etc/opsi"));
        assert_eq!(
            r.backends_dir(),
            PathBuf::from("/tmp/srv/etc/opsi/backends")
        );
        assert_eq!(
            r.dispatch_conf(),
            PathBuf::from("/tmp/srv/etc/opsi/backendManager/dispatch.conf")
        );
        assert_eq!(
            r.resolve("//var/lib/opsi/config/"),
            PathBuf::from("/tmp/srv/var/lib/opsi/config")
        );
        assert_eq!(
            r.resolve("etc/hostname"),
            PathBuf::from("/tmp/srv/etc/hostname")
        );
        assert_eq!(r.resolve(Path::new("/")), PathBuf::from("/tmp/srv"));
    }

    #[test]
    fn unresolve_inverts_resolve() {
        let r = OpsiRoot::new("/tmp/srv");
        let p = r.resolve("/etc/opsi/pckeys");
        assert_eq!(r.unresolve(&p).as_deref(), Some("/etc/opsi/pckeys"));
        assert_eq!(r.unresolve(Path::new("/tmp/srv")).as_deref(), Some("/"));
        assert_eq!(r.unresolve(Path::new("/elsewhere/x")), None);
        let live = OpsiRoot::live();
        assert_eq!(
            live.unresolve(Path::new("/etc/opsi")).as_deref(),
            Some("/etc/opsi")
        );
    }

    #[test]
    fn dotted_root_is_live() {
        assert!(OpsiRoot::new("/./").is_live());
        assert!(!OpsiRoot::new(".").is_live());
        assert!(!OpsiRoot::new("/srv").is_live());
    }
}
