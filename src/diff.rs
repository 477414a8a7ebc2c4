//! What changed between two backups, in members and in opsi terms: clients, products, depots,
//! audit data, groups and configuration files of the file backend and /etc/opsi, and the
//! tables of a MySQL dump. Each backup is read once; every member is fingerprinted (BLAKE3 of
//! its bytes, plus its metadata) and a dump is fingerprinted table by table, so memory stays
//! small whatever the backup's size. Two snapshots of a repository are compared by their
//! chunk lists instead, bulk data as two sorted streams (`bulk`, `spill`).

mod bulk;
mod spill;

pub(crate) use bulk::SnapshotPrints;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::layout::{self, DataPart};
use crate::member::{Member, MemberKind};
use crate::sink::MemberSink;

/// A member's fingerprint: content digest and the metadata a restore would set.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Print {
    content: [u8; 32],
    meta: String,
    dir: bool,
}

/// A table's fingerprint in a dump: digest of its lines and its row count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct TablePrint {
    #[serde(skip)]
    digest: [u8; 32],
    pub rows: u64,
}

/// Everything `diff` needs of one backup.
#[derive(Debug, Default)]
pub(crate) struct Fingerprints {
    members: BTreeMap<String, Print>,
    /// Dump member path -> table -> print.
    tables: BTreeMap<String, BTreeMap<String, TablePrint>>,
}

impl MemberSink for Fingerprints {
    fn add(&mut self, m: &Member, content: &mut dyn Read) -> Result<()> {
        let read_err = |e: std::io::Error| Error::Corrupt(format!("cannot read {}: {e}", m.path));
        let mut hasher = blake3::Hasher::new();
        if layout::is_mysql(&m.path) && m.kind == MemberKind::File {
            let mut tee = HashingReader {
                inner: content,
                hasher: &mut hasher,
            };
            let tables = dump_tables(&mut tee).map_err(read_err)?;
            self.tables.insert(m.path.clone(), tables);
        } else {
            std::io::copy(content, &mut hasher).map_err(read_err)?;
        }
        self.members.insert(
            m.path.clone(),
            Print {
                content: *hasher.finalize().as_bytes(),
                meta: meta_of(m),
                dir: m.kind == MemberKind::Dir,
            },
        );
        Ok(())
    }
}

/// The metadata a restore would set, as one string: equal strings, equal metadata.
fn meta_of(m: &Member) -> String {
    let link = match &m.kind {
        MemberKind::Symlink(t) | MemberKind::Hardlink(t) => t.as_str(),
        _ => "",
    };
    let mut meta = format!(
        "{:?} {:o} {}:{} {} {}",
        m.kind, m.mode, m.uname, m.gname, m.mtime.secs, link
    );
    // Bulk data's attributes and ACLs: a changed ACL is a metadata change.
    for x in &m.xattrs {
        meta.push_str(&format!(" {}={}", x.name, blake3::hash(&x.value).to_hex()));
    }
    meta
}

struct HashingReader<'a> {
    inner: &'a mut dyn Read,
    hasher: &'a mut blake3::Hasher,
}

impl Read for HashingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Splits a mysqldump by table: its structure section and INSERT lines count for the table;
/// rows are counted as the tuples of extended INSERTs.
fn dump_tables(r: &mut dyn Read) -> std::io::Result<BTreeMap<String, TablePrint>> {
    let mut out: BTreeMap<String, (blake3::Hasher, u64)> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut reader = BufReader::with_capacity(1 << 20, r);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if let Some(name) = table_named(&line, b"-- Table structure for table `")
            .or_else(|| table_named(&line, b"-- Dumping data for table `"))
        {
            current = Some(name);
        }
        let insert = table_named(&line, b"INSERT INTO `");
        if let Some(name) = insert.as_ref() {
            current = Some(name.clone());
        }
        if let Some(t) = &current {
            let e = out
                .entry(t.clone())
                .or_insert_with(|| (blake3::Hasher::new(), 0));
            e.0.update(&line);
            if insert.is_some() {
                e.1 += 1 + line.windows(3).filter(|w| w == b"),(").count() as u64;
            }
        }
    }
    Ok(out
        .into_iter()
        .map(|(k, (h, rows))| {
            (
                k,
                TablePrint {
                    digest: *h.finalize().as_bytes(),
                    rows,
                },
            )
        })
        .collect())
}

fn table_named(line: &[u8], prefix: &[u8]) -> Option<String> {
    let rest = line.strip_prefix(prefix)?;
    let end = rest.iter().position(|&c| c == b'`')?;
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Change {
    Added,
    Removed,
    Changed,
    /// Same bytes, other metadata (mode, owner, mtime).
    Metadata,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct MemberChange {
    pub change: Change,
    pub member: String,
    /// The member in opsi terms, when that is clear ("client pc1.example.org").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opsi: Option<String>,
    /// A directory in either backup: not counted among a product's files.
    #[serde(skip)]
    pub dir: bool,
}

impl MemberChange {
    fn new(change: Change, path: &str, dir: bool) -> MemberChange {
        MemberChange {
            change,
            member: path.to_string(),
            opsi: opsi_name(path),
            dir,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct TableChange {
    pub change: Change,
    pub dump: String,
    pub table: String,
    pub rows_before: u64,
    pub rows_after: u64,
}

/// A product of the depot (its directory `DATA/DEPOT/<product>`) that was added, removed or
/// changed, with how many of its files were.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ProductChange {
    pub change: Change,
    pub product: String,
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Diff {
    pub members: Vec<MemberChange>,
    pub tables: Vec<TableChange>,
    /// The depot's products that differ (bulk data backups).
    pub products: Vec<ProductChange>,
}

/// The depot product a member belongs to: the first directory below `DATA/DEPOT/`.
fn depot_product(path: &str) -> Option<&str> {
    let rest = DataPart::Depot.below(path)?;
    let product = rest.split('/').next()?;
    (!product.is_empty()).then_some(product)
}

/// The products of the depot in one backup.
fn depot_products(f: &Fingerprints) -> BTreeSet<&str> {
    f.members.keys().filter_map(|p| depot_product(p)).collect()
}

/// What `members` (the changes) say per product: a product only in `b` is added, one only in
/// `a` removed, one in both with a changed file (or metadata) changed.
fn product_changes(
    in_a: &BTreeSet<&str>,
    in_b: &BTreeSet<&str>,
    members: &[MemberChange],
) -> Vec<ProductChange> {
    let mut by_product: BTreeMap<&str, ProductChange> = BTreeMap::new();
    for m in members {
        let Some(product) = depot_product(&m.member) else {
            continue;
        };
        let change = match (in_a.contains(product), in_b.contains(product)) {
            (false, _) => Change::Added,
            (_, false) => Change::Removed,
            _ => Change::Changed,
        };
        let entry = by_product.entry(product).or_insert_with(|| ProductChange {
            change,
            product: product.to_string(),
            added: 0,
            removed: 0,
            changed: 0,
        });
        // Directories are members too; the counts are of files.
        if m.dir {
            continue;
        }
        match m.change {
            Change::Added => entry.added += 1,
            Change::Removed => entry.removed += 1,
            Change::Changed | Change::Metadata => entry.changed += 1,
        }
    }
    by_product.into_values().collect()
}

pub(crate) fn compare(a: &Fingerprints, b: &Fingerprints) -> Diff {
    let mut members = member_changes(a, b);
    members.sort_by(|x, y| x.member.cmp(&y.member));
    let products = product_changes(&depot_products(a), &depot_products(b), &members);
    Diff {
        members,
        tables: table_changes(a, b),
        products,
    }
}

/// The members that differ, in no particular order.
fn member_changes(a: &Fingerprints, b: &Fingerprints) -> Vec<MemberChange> {
    let mut out = Vec::new();
    for (path, pa) in &a.members {
        let pb = b.members.get(path);
        let change = match pb {
            None => Some(Change::Removed),
            Some(pb) if pb.content != pa.content => Some(Change::Changed),
            Some(pb) if pb.meta != pa.meta => Some(Change::Metadata),
            _ => None,
        };
        if let Some(change) = change {
            out.push(MemberChange::new(
                change,
                path,
                pa.dir || pb.is_some_and(|p| p.dir),
            ));
        }
    }
    for (path, pb) in b
        .members
        .iter()
        .filter(|(p, _)| !a.members.contains_key(*p))
    {
        out.push(MemberChange::new(Change::Added, path, pb.dir));
    }
    out
}

/// The tables of the dumps that differ, by dump and table.
fn table_changes(a: &Fingerprints, b: &Fingerprints) -> Vec<TableChange> {
    let mut out = Vec::new();
    let empty = BTreeMap::new();
    let dumps: BTreeSet<&String> = a.tables.keys().chain(b.tables.keys()).collect();
    for dump in dumps {
        let ta = a.tables.get(dump).unwrap_or(&empty);
        let tb = b.tables.get(dump).unwrap_or(&empty);
        let names: BTreeSet<&String> = ta.keys().chain(tb.keys()).collect();
        for t in names {
            let (x, y) = (ta.get(t), tb.get(t));
            let change = match (x, y) {
                (Some(_), None) => Change::Removed,
                (None, Some(_)) => Change::Added,
                (Some(x), Some(y)) if x.digest != y.digest => Change::Changed,
                _ => continue,
            };
            out.push(TableChange {
                change,
                dump: dump.clone(),
                table: t.clone(),
                rows_before: x.map_or(0, |p| p.rows),
                rows_after: y.map_or(0, |p| p.rows),
            });
        }
    }
    out
}

/// The opsi object behind a member path, where the layout makes it clear.
pub(crate) fn opsi_name(path: &str) -> Option<String> {
    if let Some(part) = DataPart::of(path) {
        let rest = part.below(path)?;
        let top = rest.split('/').next().filter(|t| !t.is_empty());
        return Some(match (part, top) {
            (DataPart::Depot, Some(p)) => format!("product {p} in the depot"),
            (DataPart::Workbench, Some(p)) => format!("{p} in the workbench"),
            (DataPart::Repository, Some(p)) => format!("package {p} in the repository"),
            (DataPart::Tftp, _) => "TFTP boot files".into(),
            (_, None) => format!("the {}", part.name()),
        });
    }
    if let Some(rest) = layout::in_conf(path) {
        return Some(format!("configuration file /etc/opsi/{rest}"));
    }
    if layout::is_dhcp(path) {
        return Some("dhcpd configuration".into());
    }
    if layout::is_file_host_keys(path) {
        return Some("host keys (pckeys)".into());
    }
    let rest = layout::in_file_backends(path)?;
    let rel = rest.split_once('/').map(|(_, r)| r)?;
    let (dir, file) = rel.rsplit_once('/').unwrap_or(("", rel));
    match dir {
        "clients" => file.strip_suffix(".ini").map(|id| format!("client {id}")),
        "depots" => file.strip_suffix(".ini").map(|id| format!("depot {id}")),
        "products" => Some(format!("product {file}")),
        "audit" => {
            if let Some(id) = file.strip_suffix(".hw") {
                Some(format!("hardware audit of {id}"))
            } else {
                file.strip_suffix(".sw")
                    .map(|id| format!("software audit of {id}"))
            }
        }
        "templates" => Some(format!("client template {file}")),
        "" => match file {
            "config.ini" => Some("configs (config.ini)".into()),
            "clientgroups.ini" => Some("client groups".into()),
            "productgroups.ini" => Some("product groups".into()),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_tables_count_rows_and_split_sections() {
        let dump = b"-- Table structure for table `HOST`\nCREATE TABLE `HOST` (x int);\nINSERT INTO `HOST` VALUES (1),(2),(3);\n-- Table structure for table `CONFIG`\nINSERT INTO `CONFIG` VALUES (1);\n";
        let t = dump_tables(&mut &dump[..]).unwrap();
        assert_eq!(t["HOST"].rows, 3);
        assert_eq!(t["CONFIG"].rows, 1);
    }

    #[test]
    fn opsi_names() {
        assert_eq!(
            opsi_name("CONTENT/BACKENDS/FILE/file/clients/pc1.example.org.ini").as_deref(),
            Some("client pc1.example.org")
        );
        assert_eq!(
            opsi_name("CONTENT/BACKENDS/FILE/file/audit/pc1.example.org.sw").as_deref(),
            Some("software audit of pc1.example.org")
        );
        assert_eq!(
            opsi_name("CONTENT/CONF/opsi.conf").as_deref(),
            Some("configuration file /etc/opsi/opsi.conf")
        );
        assert_eq!(
            opsi_name("CONTENT/BACKENDS/FILE/file/config.ini").as_deref(),
            Some("configs (config.ini)")
        );
        assert_eq!(opsi_name("CONTROL/sysinfo"), None);
        assert_eq!(
            opsi_name("DATA/DEPOT/win10-x64/installfiles/setup.exe").as_deref(),
            Some("product win10-x64 in the depot")
        );
        assert_eq!(
            opsi_name("DATA/REPOSITORY/firefox_115.0-1.opsi").as_deref(),
            Some("package firefox_115.0-1.opsi in the repository")
        );
        assert_eq!(opsi_name("DATA/DEPOT").as_deref(), Some("the depot"));
        assert_eq!(
            opsi_name("DATA/TFTP/opsi/pxelinux.0").as_deref(),
            Some("TFTP boot files")
        );
    }

    fn backup(members: &[(&str, MemberKind, &[u8])]) -> Fingerprints {
        let mut f = Fingerprints::default();
        for (path, kind, bytes) in members {
            let mut m = Member::control(path, bytes.len() as u64);
            m.kind = kind.clone();
            f.add(&m, &mut &bytes[..]).unwrap();
        }
        f
    }

    /// Products of the depot: one added, one removed, one with a changed, an added and a
    /// removed file; directories are not counted as files, an unchanged product not listed.
    #[test]
    fn depot_products_added_removed_and_changed() {
        use MemberKind::{Dir, File};
        let a = backup(&[
            ("DATA/DEPOT", Dir, b""),
            ("DATA/DEPOT/firefox", Dir, b""),
            ("DATA/DEPOT/firefox/setup.opsiscript", File, b"Files_copy"),
            ("DATA/DEPOT/firefox/old.msi", File, b"old"),
            ("DATA/DEPOT/7zip", Dir, b""),
            ("DATA/DEPOT/7zip/7z.msi", File, b"7z"),
            ("DATA/DEPOT/win10", Dir, b""),
            ("DATA/DEPOT/win10/install.wim", File, b"wim"),
        ]);
        let b = backup(&[
            ("DATA/DEPOT", Dir, b""),
            ("DATA/DEPOT/firefox", Dir, b""),
            (
                "DATA/DEPOT/firefox/setup.opsiscript",
                File,
                b"Files_copy\nWinBatch",
            ),
            ("DATA/DEPOT/firefox/new.msi", File, b"new"),
            ("DATA/DEPOT/libreoffice", Dir, b""),
            ("DATA/DEPOT/libreoffice/lo.msi", File, b"lo"),
            ("DATA/DEPOT/win10", Dir, b""),
            ("DATA/DEPOT/win10/install.wim", File, b"wim"),
        ]);
        let d = compare(&a, &b);
        let got: Vec<(String, Change, u64, u64, u64)> = d
            .products
            .iter()
            .map(|p| (p.product.clone(), p.change, p.added, p.removed, p.changed))
            .collect();
        assert_eq!(
            got,
            [
                ("7zip".to_string(), Change::Removed, 0, 1, 0),
                ("firefox".to_string(), Change::Changed, 1, 1, 1),
                ("libreoffice".to_string(), Change::Added, 1, 0, 0),
            ]
        );
    }

    /// A changed ACL (or any extended attribute) of a depot file is a metadata change.
    #[test]
    fn a_changed_acl_is_a_metadata_change() {
        let with = |value: &[u8]| {
            let mut f = Fingerprints::default();
            let mut m = Member::control("DATA/DEPOT/p/a", 1);
            m.xattrs = vec![crate::member::Xattr {
                name: "system.posix_acl_access".into(),
                value: value.to_vec(),
            }];
            f.add(&m, &mut &b"x"[..]).unwrap();
            f
        };
        let d = compare(&with(b"1"), &with(b"2"));
        assert_eq!(d.members.len(), 1);
        assert_eq!(d.members[0].change, Change::Metadata);
        assert!(compare(&with(b"1"), &with(b"1")).members.is_empty());
    }
}
