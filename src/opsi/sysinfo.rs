//! `SysInfo`: the system information in an archive's `CONTROL/sysinfo` — host name, FQDN, domain,
//! distribution, its version and code name, and the opsi version — gathered from a server the
//! way python-opsi's `SysInfo` / `OpsiBackupArchive.getSysInfo` do, and compared before a
//! restore like `OpsiBackup.getDifferencesInSysConfig`.
//!
//! File format: one `key: value\n` line per key, keys in the order the original writes them.
//!
//! Where the values come from (python-opsi uses `socket` and the `distro` package):
//! - `hostname`: the host name's first label, lower-cased (`socket.gethostname()`); for a
//!   server root other than `/`, `<root>/etc/hostname` when present;
//! - `fqdn`: what `socket.getfqdn()` gives, lower-cased: the canonical name of the host name
//!   (resolver, then `/etc/hosts`), else the host name; for another root only `<root>/etc/hosts`
//!   is consulted (DNS would describe this machine, not that server);
//! - `domainname`: the FQDN after its first `.`;
//! - `distribution`, `sysVersion`, `distributionId`: `distro.name()`, `distro.version()` as a
//!   Python tuple of ints (`(12,)`, `(22, 4)`) and `distro.codename()`, read from
//!   `<root>/etc/os-release` (or `<root>/usr/lib/os-release`) and, on Debian-like systems
//!   without `VERSION_ID`, `<root>/etc/debian_version`;
//! - `opsiVersion`: the upstream version of the first installed of python3-opsi, opsiconfd,
//!   opsi-utils in `<root>/var/lib/dpkg/status`, else `$OPSI_BACKUP_OPSI_VERSION`, else `4.3`.
//!
//! `OPSI_BACKUP_HOSTNAME` and `OPSI_BACKUP_FQDN` override the host name and FQDN.

use std::ffi::{CStr, CString};
use std::path::Path;

use super::root::OpsiRoot;

/// The sysinfo keys in the order the original writes them.
#[cfg(test)]
pub(crate) const KEYS: [&str; 7] = [
    "hostname",
    "fqdn",
    "domainname",
    "distribution",
    "sysVersion",
    "distributionId",
    "opsiVersion",
];

/// The opsi version recorded when no installed opsi package is found.
pub(crate) const DEFAULT_OPSI_VERSION: &str = "4.3";

/// The dpkg packages whose version is the opsi version, in order of preference.
const OPSI_PACKAGES: [&str; 3] = ["python3-opsi", "opsiconfd", "opsi-utils"];

/// SysInfo is an ordered list of `(key, value)` pairs with unique keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct SysInfo(Vec<(String, String)>);

/// One key whose value differs between an archive and this system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Difference {
    pub key: String,
    /// The value in the archive.
    pub archive: String,
    /// The value on this system; `None` when the system has no such key.
    pub system: Option<String>,
}

impl SysInfo {
    /// An empty SysInfo.
    pub(crate) fn new() -> SysInfo {
        SysInfo::default()
    }

    /// The information of the server at `root`, read from the process environment, the
    /// resolver and the files under `root`. Never fails: what cannot be found is empty.
    pub(crate) fn gather(root: &OpsiRoot) -> SysInfo {
        gather_with(
            root,
            &|k| std::env::var(k).ok().filter(|v| !v.is_empty()),
            system_hostname,
        )
    }

    /// Parses a `CONTROL/sysinfo`: `key: value` lines, split at the first `:`, both sides
    /// trimmed. Lines without `:` or with an empty key are skipped; a repeated key keeps its
    /// first place and its last value (as the original's dict does).
    #[cfg(test)]
    pub(crate) fn parse(text: &str) -> SysInfo {
        let mut info = SysInfo::new();
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let key = key.trim();
            if !key.is_empty() {
                info.set_raw(key, value.trim().to_string());
            }
        }
        info
    }

    /// The `CONTROL/sysinfo` text: `"{key}: {value}\n"` per key, in order.
    pub(crate) fn render(&self) -> String {
        self.0.iter().map(|(k, v)| format!("{k}: {v}\n")).collect()
    }

    /// The value of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `key` (appended when new). The value is made safe for the file format: the
    /// original's reader splits each line on every `:` and fails on a second one, so `:` becomes
    /// `-`; line breaks become spaces; surrounding white space is trimmed.
    pub(crate) fn set(&mut self, key: &str, value: &str) {
        let clean: String = value
            .trim()
            .chars()
            .map(|c| match c {
                ':' => '-',
                '\n' | '\r' => ' ',
                c => c,
            })
            .collect();
        self.set_raw(key, clean);
    }

    fn set_raw(&mut self, key: &str, value: String) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key.to_string(), value)),
        }
    }

    /// The `(key, value)` pairs in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The host name, used in generated archive names.
    #[cfg(test)]
    pub(crate) fn hostname(&self) -> Option<&str> {
        self.get("hostname")
    }

    /// The opsi version, used in generated archive names.
    #[cfg(test)]
    pub(crate) fn opsi_version(&self) -> Option<&str> {
        self.get("opsiVersion")
    }

    /// The keys of `self` (an archive's sysinfo) whose trimmed value differs from the trimmed
    /// value in `system`, or which `system` lacks. Keys only `system` has do not count.
    pub(crate) fn differences(&self, system: &SysInfo) -> Vec<Difference> {
        self.0
            .iter()
            .filter_map(|(key, value)| {
                let sys = system.get(key);
                match sys {
                    Some(s) if s.trim() == value.trim() => None,
                    _ => Some(Difference {
                        key: key.clone(),
                        archive: value.clone(),
                        system: sys.map(str::to_string),
                    }),
                }
            })
            .collect()
    }
}

/// `gather` with the environment lookup and the kernel host name as parameters, for tests.
fn gather_with(
    root: &OpsiRoot,
    env: &dyn Fn(&str) -> Option<String>,
    kernel_hostname: fn() -> Option<String>,
) -> SysInfo {
    let etc_hostname = if root.is_live() {
        None
    } else {
        read_etc_hostname(&root.resolve("/etc/hostname"))
    };
    let full_name = env("OPSI_BACKUP_HOSTNAME")
        .or(etc_hostname)
        .or_else(kernel_hostname)
        .unwrap_or_default()
        .trim()
        .to_lowercase();
    let hostname = full_name.split('.').next().unwrap_or_default().to_string();
    let fqdn = match env("OPSI_BACKUP_FQDN") {
        Some(f) => f.trim().to_lowercase(),
        None => fqdn_of(root, &full_name),
    };
    let domainname = fqdn
        .split_once('.')
        .map(|(_, d)| d.to_string())
        .unwrap_or_default();
    let dist = Distribution::read(root);
    let opsi_version = read_file(&root.resolve("/var/lib/dpkg/status"))
        .and_then(|status| dpkg_opsi_version(&status))
        .or_else(|| env("OPSI_BACKUP_OPSI_VERSION"))
        .unwrap_or_else(|| DEFAULT_OPSI_VERSION.to_string());

    let mut info = SysInfo::new();
    info.set("hostname", &hostname);
    info.set("fqdn", &fqdn);
    info.set("domainname", &domainname);
    info.set("distribution", &dist.name);
    info.set("sysVersion", &dist.version_tuple());
    info.set("distributionId", &dist.codename);
    info.set("opsiVersion", &opsi_version);
    info
}

fn read_file(path: &Path) -> Option<String> {
    std::fs::read(path)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// The first non-comment line of an `/etc/hostname`.
fn read_etc_hostname(path: &Path) -> Option<String> {
    read_file(path)?
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
}

/// `socket.getfqdn()` for the host called `name`: the first name with a dot among those the
/// host is known by, else `name` itself.
fn fqdn_of(root: &OpsiRoot, name: &str) -> String {
    if name.is_empty() {
        return String::new();
    }
    if root.is_live() {
        if let Some(canon) = canonical_name(name).filter(|c| c.contains('.')) {
            return canon.to_lowercase();
        }
    }
    if name.contains('.') {
        return name.to_string();
    }
    read_file(&root.resolve("/etc/hosts"))
        .and_then(|hosts| fqdn_from_hosts(&hosts, name))
        .unwrap_or_else(|| name.to_string())
        .to_lowercase()
}

/// In an `/etc/hosts` text, the first name with a dot on the first line that lists `name`.
fn fqdn_from_hosts(hosts: &str, name: &str) -> Option<String> {
    for line in hosts.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let names: Vec<&str> = line.split_whitespace().skip(1).collect();
        if names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            return names
                .iter()
                .find(|n| n.contains('.'))
                .map(|n| n.to_string());
        }
    }
    None
}

/// The kernel's host name (`gethostname(2)`).
fn system_hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for `buf.len()` bytes; gethostname writes at most that many.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast::<libc::c_char>(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8(buf[..end].to_vec())
        .ok()
        .filter(|s| !s.is_empty())
}

/// The resolver's canonical name for `host` (`getaddrinfo` with `AI_CANONNAME`).
fn canonical_name(host: &str) -> Option<String> {
    let c_host = CString::new(host).ok()?;
    // SAFETY: a zeroed addrinfo is a valid "no constraints" hints value.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_flags = libc::AI_CANONNAME;
    hints.ai_family = libc::AF_UNSPEC;
    hints.ai_socktype = libc::SOCK_STREAM;
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: all pointers are valid; on success `res` is a list we free below.
    let rc = unsafe { libc::getaddrinfo(c_host.as_ptr(), std::ptr::null(), &hints, &mut res) };
    if rc != 0 || res.is_null() {
        return None;
    }
    // SAFETY: `res` is the non-null head returned by getaddrinfo; ai_canonname is null or a C
    // string owned by the list, copied before the list is freed.
    let name = unsafe {
        let cn = (*res).ai_canonname;
        let name = (!cn.is_null()).then(|| CStr::from_ptr(cn).to_string_lossy().into_owned());
        libc::freeaddrinfo(res);
        name
    };
    name.filter(|n| !n.is_empty())
}

/// What the `distro` package reports about a system.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Distribution {
    name: String,
    version: String,
    codename: String,
}

impl Distribution {
    fn read(root: &OpsiRoot) -> Distribution {
        let text = read_file(&root.resolve("/etc/os-release"))
            .or_else(|| read_file(&root.resolve("/usr/lib/os-release")))
            .unwrap_or_default();
        let debian_version = read_file(&root.resolve("/etc/debian_version"));
        Distribution::from_os_release(&text, debian_version.as_deref())
    }

    fn from_os_release(text: &str, debian_version: Option<&str>) -> Distribution {
        let fields = parse_os_release(text);
        let get = |k: &str| {
            fields
                .iter()
                .find(|(fk, _)| fk == k)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        let debian_like = get("ID") == Some("debian")
            || get("ID_LIKE").is_some_and(|l| l.split_whitespace().any(|w| w == "debian"));
        let version = match get("VERSION_ID") {
            Some(v) => v.to_string(),
            None if debian_like => debian_version.unwrap_or_default().trim().to_string(),
            None => String::new(),
        };
        let codename = get("VERSION_CODENAME")
            .or_else(|| get("UBUNTU_CODENAME"))
            .map(str::to_string)
            .or_else(|| get("VERSION").and_then(codename_from_version))
            .unwrap_or_default();
        Distribution {
            name: get("NAME").unwrap_or_default().trim().to_string(),
            version,
            codename,
        }
    }

    /// `str(tuple(int(x) for x in version.split(".")))`, e.g. `(12,)` or `(22, 4)`. A version
    /// with a part that is not a number (where python-opsi would fail) is kept as written.
    fn version_tuple(&self) -> String {
        let mut v = self.version.as_str();
        if v.contains("errata") {
            v = v.trim_matches('"').split('-').next().unwrap_or_default();
        }
        let parts: Option<Vec<i64>> = v.split('.').map(|p| p.trim().parse().ok()).collect();
        match parts {
            Some(p) if p.len() == 1 => format!("({},)", p[0]),
            Some(p) => {
                let inner: Vec<String> = p.iter().map(i64::to_string).collect();
                format!("({})", inner.join(", "))
            }
            None => self.version.clone(),
        }
    }
}

/// `KEY=value` pairs of an os-release file, with shell quoting removed.
fn parse_os_release(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        out.push((key.trim().to_string(), unquote(value.trim())));
    }
    out
}

fn unquote(v: &str) -> String {
    let mut chars = v.chars();
    match chars.next() {
        Some('\'') => chars.take_while(|c| *c != '\'').collect(),
        Some('"') => {
            let mut out = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.next() {
                        Some(e @ ('"' | '\\' | '$' | '`')) => out.push(e),
                        Some(e) => {
                            out.push('\\');
                            out.push(e);
                        }
                        None => out.push('\\'),
                    },
                    c => out.push(c),
                }
            }
            out
        }
        _ => v.to_string(),
    }
}

/// The code name inside an os-release `VERSION`, as `distro` finds it with
/// `\((\D+)\)|,\s*(\D+)`: `12 (bookworm)` -> `bookworm`, `7 (Core)` -> `Core`.
fn codename_from_version(version: &str) -> Option<String> {
    let chars: Vec<char> = version.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        // The run of non-digits after position i.
        let run_end = |from: usize| {
            (from..chars.len())
                .find(|&j| chars[j].is_ascii_digit())
                .unwrap_or(chars.len())
        };
        let matched = if c == '(' {
            let end = run_end(i + 1);
            // `\D+` backtracks to the last `)` of the run; it needs one char before it.
            (i + 2..end)
                .rev()
                .find(|&j| chars[j] == ')')
                .map(|j| &chars[i..=j])
        } else if c == ',' {
            let end = run_end(i + 1);
            (end > i + 1).then(|| &chars[i..end])
        } else {
            None
        };
        if let Some(m) = matched {
            let s: String = m.iter().collect();
            let s = s
                .trim_matches(['(', ')'])
                .trim_matches(',')
                .trim()
                .to_string();
            return Some(s).filter(|s| !s.is_empty());
        }
    }
    None
}

/// The upstream version of the first installed opsi package in a dpkg status file
/// (`1:4.3.0.28-1` -> `4.3.0.28`).
fn dpkg_opsi_version(status: &str) -> Option<String> {
    let mut found: Vec<(String, String)> = Vec::new();
    for stanza in status.split("\n\n") {
        let (mut package, mut installed, mut version) = (None, false, None);
        for line in stanza.lines() {
            if let Some(v) = line.strip_prefix("Package:") {
                package = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Status:") {
                installed = v.trim().ends_with(" installed");
            } else if let Some(v) = line.strip_prefix("Version:") {
                version = Some(v.trim());
            }
        }
        if let (Some(p), true, Some(v)) = (package, installed, version) {
            if OPSI_PACKAGES.contains(&p) {
                found.push((p.to_string(), upstream_version(v)));
            }
        }
    }
    OPSI_PACKAGES
        .iter()
        .find_map(|want| {
            found
                .iter()
                .find(|(p, _)| p == want)
                .map(|(_, v)| v.clone())
        })
        .filter(|v| !v.is_empty())
}

/// A Debian version without epoch and revision.
fn upstream_version(v: &str) -> String {
    let v = v.split_once(':').map_or(v, |(_, rest)| rest);
    let v = v.rsplit_once('-').map_or(v, |(upstream, _)| upstream);
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::fs;

    const DEBIAN_OS_RELEASE: &str = r#"PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
"#;

    fn write(root: &OpsiRoot, path: &str, text: &str) {
        let p = root.resolve(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn no_kernel_hostname() -> Option<String> {
        Some("kernel-host".to_string())
    }

    #[test]
    fn gather_from_a_server_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = OpsiRoot::new(dir.path());
        write(&root, "/etc/hostname", "OPSI\n");
        write(
            &root,
            "/etc/hosts",
            "127.0.0.1 localhost\n127.0.1.1 opsi.Example.org opsi # me\n",
        );
        write(&root, "/etc/os-release", DEBIAN_OS_RELEASE);
        write(&root, "/etc/debian_version", "12.4\n");
        write(
            &root,
            "/var/lib/dpkg/status",
            "Package: opsi-utils\nStatus: install ok installed\nVersion: 4.3.2.1-1\n\n\
             Package: python3-opsi\nStatus: deinstall ok config-files\nVersion: 4.2.0.1-1\n\n\
             Package: opsiconfd\nStatus: install ok installed\nVersion: 1:4.3.0.28-1\n",
        );
        let info = gather_with(&root, &env_of(&[]), no_kernel_hostname);
        assert_eq!(
            info.render(),
            "hostname: opsi\nfqdn: opsi.example.org\ndomainname: example.org\n\
             distribution: Debian GNU/Linux\nsysVersion: (12,)\ndistributionId: bookworm\n\
             opsiVersion: 4.3.0.28\n"
        );
        let keys: Vec<&str> = info.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, KEYS);
    }

    #[test]
    fn gather_overrides_and_fallbacks() {
        let dir = tempfile::tempdir().unwrap();
        let root = OpsiRoot::new(dir.path());
        let env = env_of(&[
            ("OPSI_BACKUP_HOSTNAME", "Srv.Lan"),
            ("OPSI_BACKUP_FQDN", "srv.corp.example"),
            ("OPSI_BACKUP_OPSI_VERSION", "4.3.9"),
        ]);
        let info = gather_with(&root, &env, no_kernel_hostname);
        assert_eq!(info.get("hostname"), Some("srv"));
        assert_eq!(info.get("fqdn"), Some("srv.corp.example"));
        assert_eq!(info.get("domainname"), Some("corp.example"));
        assert_eq!(info.get("distribution"), Some(""));
        assert_eq!(info.get("sysVersion"), Some(""));
        assert_eq!(info.opsi_version(), Some("4.3.9"));

        let info = gather_with(&root, &env_of(&[]), no_kernel_hostname);
        assert_eq!(info.hostname(), Some("kernel-host"));
        assert_eq!(info.get("fqdn"), Some("kernel-host"));
        assert_eq!(info.get("domainname"), Some(""));
        assert_eq!(info.opsi_version(), Some(DEFAULT_OPSI_VERSION));
    }

    #[test]
    fn gather_live_system_does_not_panic() {
        let info = SysInfo::gather(&OpsiRoot::live());
        assert_eq!(info.iter().count(), KEYS.len());
        assert!(info.iter().all(|(_, v)| !v.contains(':')));
    }

    #[test]
    fn distributions() {
        let d = Distribution::from_os_release(DEBIAN_OS_RELEASE, Some("12.4"));
        assert_eq!(
            (d.name.as_str(), d.version_tuple(), d.codename.as_str()),
            ("Debian GNU/Linux", "(12,)".to_string(), "bookworm")
        );

        let ubuntu =
            "NAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\nVERSION=\"22.04.3 LTS (Jammy Jellyfish)\"\n\
                      ID=ubuntu\nID_LIKE=debian\nUBUNTU_CODENAME=jammy\n";
        let d = Distribution::from_os_release(ubuntu, Some("bookworm/sid"));
        assert_eq!(
            (d.version_tuple(), d.codename.as_str()),
            ("(22, 4)".to_string(), "jammy")
        );

        let centos = "NAME='CentOS Linux'\nVERSION=\"7 (Core)\"\nID=\"centos\"\nVERSION_ID=\"7\"\n";
        let d = Distribution::from_os_release(centos, None);
        assert_eq!(
            (d.name.as_str(), d.version_tuple(), d.codename.as_str()),
            ("CentOS Linux", "(7,)".to_string(), "Core")
        );

        let sles = "NAME=\"SLES\"\nVERSION=\"15-SP5\"\nVERSION_ID=\"15.5\"\nID=\"sles\"\n";
        let d = Distribution::from_os_release(sles, None);
        assert_eq!(
            (d.version_tuple(), d.codename.as_str()),
            ("(15, 5)".to_string(), "")
        );

        let sid = "NAME=\"Debian GNU/Linux\"\nID=debian\nVERSION_CODENAME=trixie\n";
        let d = Distribution::from_os_release(sid, Some("trixie/sid\n"));
        assert_eq!(d.version_tuple(), "trixie/sid");
        let d = Distribution::from_os_release(sid, Some("13.1\n"));
        assert_eq!(d.version_tuple(), "(13, 1)");

        let rhel = Distribution {
            version: "\"6.0-errata\"".into(),
            ..Distribution::default()
        };
        assert_eq!(rhel.version_tuple(), "(6, 0)");
        let three = Distribution {
            version: "6.0.9".into(),
            ..Distribution::default()
        };
        assert_eq!(three.version_tuple(), "(6, 0, 9)");
    }

    #[test]
    fn codename_regex_semantics() {
        assert_eq!(
            codename_from_version("12 (bookworm)").as_deref(),
            Some("bookworm")
        );
        assert_eq!(codename_from_version("7 (Core)").as_deref(), Some("Core"));
        assert_eq!(
            codename_from_version("16.04, Xenial Xerus").as_deref(),
            Some("Xenial Xerus")
        );
        assert_eq!(codename_from_version("15-SP5").as_deref(), None);
        assert_eq!(codename_from_version("1 (2)").as_deref(), None);
    }

    #[test]
    fn os_release_quoting() {
        let f = parse_os_release("# c\nA=\"x \\\"y\\\" \\$z\"\nB='single q'\nC=bare\nbogus\n");
        assert_eq!(
            f,
            [
                ("A".to_string(), "x \"y\" $z".to_string()),
                ("B".to_string(), "single q".to_string()),
                ("C".to_string(), "bare".to_string())
            ]
        );
    }

    #[test]
    fn debian_versions() {
        assert_eq!(upstream_version("4.3.0.28-1"), "4.3.0.28");
        assert_eq!(upstream_version("1:4.3.0.28-1"), "4.3.0.28");
        assert_eq!(upstream_version("4.3.0-rc1-2"), "4.3.0-rc1");
        assert_eq!(upstream_version("4.3"), "4.3");
        assert_eq!(
            dpkg_opsi_version(
                "Package: opsi-utils\nStatus: install ok installed\nVersion: 4.3.1-2\n"
            ),
            Some("4.3.1".into())
        );
        assert_eq!(
            dpkg_opsi_version("Package: bash\nStatus: install ok installed\nVersion: 5.2-1\n"),
            None
        );
    }

    #[test]
    fn hosts_lookup() {
        let hosts = "127.0.0.1\tlocalhost\n# 10.0.0.1 opsi.wrong.org opsi\n10.0.0.2 opsi opsi.lan.example\n";
        assert_eq!(
            fqdn_from_hosts(hosts, "OPSI").as_deref(),
            Some("opsi.lan.example")
        );
        assert_eq!(fqdn_from_hosts(hosts, "localhost"), None);
        assert_eq!(fqdn_from_hosts(hosts, "other"), None);
    }

    #[test]
    fn parse_render_round_trip() {
        let text = "hostname: opsi\nfqdn: opsi.example.org\ndomainname: example.org\n\
                    distribution: Debian GNU/Linux\nsysVersion: (12,)\ndistributionId: bookworm\n\
                    opsiVersion: 4.2.0.287\n";
        let info = SysInfo::parse(text);
        assert_eq!(info.render(), text);
        assert_eq!(info.get("sysVersion"), Some("(12,)"));
    }

    #[test]
    fn parse_is_lenient() {
        let info = SysInfo::parse(
            "  hostname :  opsi  \r\ngarbage line\n: no key\nurl: http://x:80\n\nhostname: again\n",
        );
        assert_eq!(
            info.iter().collect::<Vec<_>>(),
            [("hostname", "again"), ("url", "http://x:80")]
        );
        assert_eq!(SysInfo::parse(""), SysInfo::new());
    }

    #[test]
    fn set_sanitizes_values() {
        let mut info = SysInfo::new();
        info.set("distribution", " Foo: Linux\nx ");
        assert_eq!(info.render(), "distribution: Foo- Linux x\n");
    }

    #[test]
    fn differences_like_the_original() {
        let archive =
            SysInfo::parse("hostname: opsi\nfqdn: opsi.example.org\nsysVersion: (11,)\nextra: 1\n");
        let system = SysInfo::parse(
            "hostname:  opsi \nfqdn: opsi.example.org\nsysVersion: (12,)\nonly: here\n",
        );
        let d = archive.differences(&system);
        assert_eq!(
            d,
            [
                Difference {
                    key: "sysVersion".into(),
                    archive: "(11,)".into(),
                    system: Some("(12,)".into())
                },
                Difference {
                    key: "extra".into(),
                    archive: "1".into(),
                    system: None
                },
            ]
        );
        assert!(system.differences(&system).is_empty());
    }
}
