//! Where each part of an opsi server lies inside an opsi-backup archive
//! (`docs/OPSI-BACKUP-FACTS.md`, "Archive layout"). The one module that spells out `CONTENT/`
//! and `CONTROL/`: sources name their members here, restore finds its parts here, the archive
//! scanner, diff and the MySQL dump ask here. Imports nothing.

/// `/etc/opsi`, the server's configuration.
pub(crate) const CONF: &str = "CONTENT/CONF";
/// The sha1 of every content file, one `<sha1> <path>` line each.
pub(crate) const CHECKSUMS: &str = "CONTROL/checksums";
/// The server's system information (`key: value` lines).
pub(crate) const SYSINFO: &str = "CONTROL/sysinfo";

const CONTENT_DIR: &str = "CONTENT/";
const FILE: &str = "CONTENT/BACKENDS/FILE";
const FILE_HOSTKEYS: &str = "CONTENT/BACKENDS/FILE_HOSTKEYS";
const DHCP: &str = "CONTENT/BACKENDS/DHCP";
const MYSQL: &str = "CONTENT/BACKENDS/MYSQL";

/// The parts an archive can hold, named as `list` and the `--backends` option name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Configuration,
    Dhcp,
    File,
    Mysql,
}

impl Part {
    /// The part a member belongs to, tested as the original tests it: a plain prefix, so
    /// `FILE` also takes `FILE_HOSTKEYS` (the host keys go with the file backend).
    pub(crate) fn of(path: &str) -> Option<Part> {
        [
            (CONF, Part::Configuration),
            (DHCP, Part::Dhcp),
            (FILE, Part::File),
            (MYSQL, Part::Mysql),
        ]
        .into_iter()
        .find(|(prefix, _)| path.starts_with(prefix))
        .map(|(_, part)| part)
    }
}

/// The file backend `name`'s base directory tree.
pub(crate) fn file_backend(name: &str) -> String {
    format!("{FILE}/{name}")
}

/// The directory holding the file backend `name`'s host key file, when it lies outside the
/// base directory.
pub(crate) fn file_host_keys(name: &str) -> String {
    format!("{FILE_HOSTKEYS}/{name}")
}

/// The directory holding the dhcp backend `name`'s dhcpd.conf.
pub(crate) fn dhcp_backend(name: &str) -> String {
    format!("{DHCP}/{name}")
}

/// The SQL dump of the MySQL backend `name`.
pub(crate) fn mysql_dump(name: &str) -> String {
    format!("{MYSQL}/{name}/database.sql")
}

/// Whether `path` is server data (under `CONTENT/`), the members CONTROL/checksums covers.
pub(crate) fn is_content(path: &str) -> bool {
    path.starts_with(CONTENT_DIR)
}

/// Whether `path` lies in the MySQL part (a dump).
pub(crate) fn is_mysql(path: &str) -> bool {
    below(path, MYSQL)
}

/// Whether `path` lies in the host keys' part.
pub(crate) fn is_file_host_keys(path: &str) -> bool {
    below(path, FILE_HOSTKEYS)
}

/// Whether `path` lies in the dhcp part.
pub(crate) fn is_dhcp(path: &str) -> bool {
    below(path, DHCP)
}

/// Whether `path` lies below the directory `dir` (per member, so without building a string).
fn below(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// The path of a configuration member below /etc/opsi (`CONTENT/CONF/a/b` -> `a/b`).
pub(crate) fn in_conf(path: &str) -> Option<&str> {
    path.strip_prefix(CONF)?.strip_prefix('/')
}

/// The path of a file-backend member below `CONTENT/BACKENDS/FILE/`, its backend's name first.
pub(crate) fn in_file_backends(path: &str) -> Option<&str> {
    path.strip_prefix(FILE)?.strip_prefix('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_as_the_original_tests_them() {
        assert_eq!(
            Part::of("CONTENT/CONF/opsi.conf"),
            Some(Part::Configuration)
        );
        assert_eq!(Part::of(&file_host_keys("file")), Some(Part::File));
        assert_eq!(Part::of(&mysql_dump("mysql")), Some(Part::Mysql));
        assert_eq!(Part::of(&dhcp_backend("dhcpd")), Some(Part::Dhcp));
        assert_eq!(Part::of(CHECKSUMS), None);
        assert_eq!(in_conf("CONTENT/CONF/a/b"), Some("a/b"));
        assert_eq!(in_conf("CONTENT/CONFX/a"), None);
        assert_eq!(
            in_file_backends("CONTENT/BACKENDS/FILE/file/clients/a.ini"),
            Some("file/clients/a.ini")
        );
        assert_eq!(in_file_backends("CONTENT/BACKENDS/FILE_HOSTKEYS/x"), None);
        assert!(is_mysql("CONTENT/BACKENDS/MYSQL/mysql/database.sql"));
        assert!(is_content("CONTENT/x") && !is_content(SYSINFO));
    }
}
