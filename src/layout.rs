//! Where each part of an opsi server lies inside an opsi-backup archive
//! (`docs/OPSI-BACKUP-FACTS.md`, "Archive layout"). The one module that spells out `CONTENT/`
//! and `CONTROL/`: sources name their members here, restore finds its parts here, the archive
//! scanner, diff and the MySQL dump ask here. Imports nothing.
//!
//! Beside the original's parts, a repository snapshot may hold the server's bulk data (depot,
//! workbench, package repository, TFTP boot files) under `DATA/<PART>/` (`DataPart`): outside
//! `CONTENT/`, so CONTROL/checksums never lists them (no sha1 is computed for depot bytes; the
//! repository's BLAKE3 chunk ids guard them) and an exported opsi-backup archive, which must
//! stay exactly the original's, never holds them.

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

const DATA_DIR: &str = "DATA/";

/// The server's bulk data a snapshot may hold beside the original's parts, named as the
/// `--backends` option names them. Never in an opsi-backup archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum DataPart {
    /// The depot (`depotLocalUrl`): one directory per product.
    Depot,
    /// The workbench (`workbenchLocalUrl`): where packages are built.
    Workbench,
    /// The package repository (`repositoryLocalUrl`): the .opsi files.
    Repository,
    /// The TFTP boot files (opsipxeconfd's TFTP root).
    Tftp,
}

impl DataPart {
    pub(crate) const ALL: [DataPart; 4] = [
        DataPart::Depot,
        DataPart::Workbench,
        DataPart::Repository,
        DataPart::Tftp,
    ];

    /// The name `--backends`, the toml and a snapshot's backends list use.
    pub(crate) fn name(self) -> &'static str {
        match self {
            DataPart::Depot => "depot",
            DataPart::Workbench => "workbench",
            DataPart::Repository => "repository",
            DataPart::Tftp => "tftp",
        }
    }

    /// The part called `name` (case-insensitive).
    pub(crate) fn parse(name: &str) -> Option<DataPart> {
        DataPart::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The member path of the part's top directory: `DATA/DEPOT`.
    pub(crate) fn prefix(self) -> String {
        format!("{DATA_DIR}{}", self.name().to_uppercase())
    }

    /// The part member `path` belongs to.
    pub(crate) fn of(path: &str) -> Option<DataPart> {
        let rest = path.strip_prefix(DATA_DIR)?;
        let top = rest.split('/').next()?;
        DataPart::ALL
            .into_iter()
            .find(|p| p.name().to_uppercase() == top)
    }

    /// The path of member `path` below the part's top directory (`DATA/DEPOT/a/b` -> `a/b`,
    /// the top directory itself -> ``).
    pub(crate) fn below(self, path: &str) -> Option<&str> {
        let rest = path
            .strip_prefix(DATA_DIR)?
            .strip_prefix(self.name().to_uppercase().as_str())?;
        if rest.is_empty() {
            return Some("");
        }
        rest.strip_prefix('/')
    }
}

/// The unit of bulk data member `path` belongs to, as `restore --product` and `stats` see it:
/// the first level below the depot, the workbench or the package repository (a product's or
/// a package's directory: `(Depot, Some("win10"))`); TFTP boot files and the part's top
/// directory belong to the part alone (`(Tftp, None)`).
pub(crate) fn data_unit(path: &str) -> Option<(DataPart, Option<&str>)> {
    let part = DataPart::of(path)?;
    let first = part
        .below(path)?
        .split('/')
        .next()
        .filter(|f| !f.is_empty());
    Some((part, if part == DataPart::Tftp { None } else { first }))
}

/// Whether `path` is bulk data of a snapshot (under `DATA/`), which archives never hold.
pub(crate) fn is_data(path: &str) -> bool {
    path.starts_with(DATA_DIR)
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

    #[test]
    fn data_parts_lie_outside_content() {
        let depot = DataPart::Depot.prefix();
        assert_eq!(depot, "DATA/DEPOT");
        assert!(is_data(&depot) && !is_content(&depot));
        assert_eq!(Part::of(&depot), None, "the original's parts are untouched");
        assert_eq!(
            DataPart::of("DATA/DEPOT/win10/x.wim"),
            Some(DataPart::Depot)
        );
        assert_eq!(DataPart::of("DATA/TFTP"), Some(DataPart::Tftp));
        assert_eq!(DataPart::of("DATA/DEPOTX/a"), None);
        assert_eq!(DataPart::Depot.below("DATA/DEPOT/win10/x"), Some("win10/x"));
        assert_eq!(DataPart::Depot.below("DATA/DEPOT"), Some(""));
        assert_eq!(DataPart::Depot.below("DATA/DEPOTX"), None);
        assert_eq!(DataPart::parse(" TFTP"), Some(DataPart::Tftp));
        assert_eq!(
            data_unit("DATA/DEPOT/win10/a/b"),
            Some((DataPart::Depot, Some("win10")))
        );
        assert_eq!(data_unit("DATA/DEPOT"), Some((DataPart::Depot, None)));
        assert_eq!(data_unit("DATA/TFTP/grub/x"), Some((DataPart::Tftp, None)));
        assert_eq!(data_unit("CONTENT/CONF/x"), None);
        assert_eq!(DataPart::parse("file"), None);
    }
}
