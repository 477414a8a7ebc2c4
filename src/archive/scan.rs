//! One pass over an archive's members that checks it the way `verify` must and gathers what
//! `list` and `restore` need: every CONTENT file's sha1 against CONTROL/checksums, the
//! sysinfo, which parts the archive contains, and the (small) backend configuration files
//! inside its CONTENT/CONF so restore can plan before it touches anything.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io::Read;

use crate::archive::control::{self, Checksums, Sha1Reader};
use crate::error::{Error, Result};
use crate::layout::{self, Part};
use crate::member::{Member, MemberKind};
use crate::sink::MemberSink;

/// Which parts an archive holds, as `list` prints them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Contains {
    pub configuration: bool,
    pub dhcp: bool,
    pub file: bool,
    pub mysql: bool,
}

impl Contains {
    pub(crate) fn note(&mut self, path: &str) {
        match Part::of(path) {
            Some(Part::Configuration) => self.configuration = true,
            Some(Part::Dhcp) => self.dhcp = true,
            Some(Part::File) => self.file = true,
            Some(Part::Mysql) => self.mysql = true,
            None => {}
        }
    }

    /// The names present, sorted: "configuration, dhcp, file, mysql".
    pub(crate) fn names(&self) -> Vec<&'static str> {
        [
            ("configuration", self.configuration),
            ("dhcp", self.dhcp),
            ("file", self.file),
            ("mysql", self.mysql),
        ]
        .into_iter()
        .filter(|(_, on)| *on)
        .map(|(n, _)| n)
        .collect()
    }
}

/// Something wrong with an archive's integrity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    /// Its bytes do not match CONTROL/checksums.
    Corrupt(String),
    /// Listed in CONTROL/checksums but absent from the archive.
    Missing(String),
    /// A CONTENT file without a line in CONTROL/checksums.
    Unlisted(String),
    /// CONTROL/checksums or CONTROL/sysinfo is absent.
    NoControl(&'static str),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Corrupt(m) => write!(
                f,
                "member {m} is corrupt (sha1 does not match CONTROL/checksums)"
            ),
            Problem::Missing(m) => {
                write!(f, "member {m} is listed in CONTROL/checksums but missing")
            }
            Problem::Unlisted(m) => write!(f, "member {m} has no checksum in CONTROL/checksums"),
            Problem::NoControl(m) => {
                write!(f, "{m} is missing: not a complete opsi-backup archive")
            }
        }
    }
}

/// Files under CONTENT/CONF that restore reads to plan (backend configs, dispatch.conf).
pub(crate) fn is_planning_file(path: &str) -> bool {
    layout::in_conf(path).is_some_and(|rel| {
        (rel.starts_with("backends/") && rel.ends_with(".conf"))
            || rel == "backendManager/dispatch.conf"
    })
}

#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub members: u64,
    pub content_bytes: u64,
    /// sha1 of every CONTENT regular file, in archive order.
    pub computed: Vec<(String, String)>,
    /// Every member's path; of bulk data, its part and product directories only
    /// (`DATA/DEPOT/win10-x64`).
    pub present: HashSet<String>,
    pub checksums: Option<Checksums>,
    pub sysinfo: Option<Vec<(String, String)>>,
    pub contains: Contains,
    /// Backend configuration files of the archived /etc/opsi, by member path.
    pub planning_files: BTreeMap<String, Vec<u8>>,
    /// The first member named like a snapshot's bulk data (`DATA/...`), which no opsi-backup
    /// archive holds.
    pub bulk_data: Option<String>,
}

impl Scan {
    pub(crate) fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let Some(sums) = &self.checksums else {
            out.push(Problem::NoControl(control::CHECKSUMS));
            return out;
        };
        for (path, sha1) in &self.computed {
            match sums.get(path) {
                Some(s) if s == sha1 => {}
                Some(_) => out.push(Problem::Corrupt(path.clone())),
                None => out.push(Problem::Unlisted(path.clone())),
            }
        }
        let mut missing: Vec<&str> = sums
            .paths()
            .filter(|p| !self.present.contains(*p))
            .collect();
        missing.sort_unstable();
        out.extend(missing.into_iter().map(|p| Problem::Missing(p.to_string())));
        if self.sysinfo.is_none() {
            out.push(Problem::NoControl(control::SYSINFO));
        }
        out
    }

    /// Fails when the archive holds a member named like bulk data: the original never writes
    /// one, and imported it would pass for a depot backup that `restore --backends depot`
    /// writes onto the server (a hostile archive could plant files there).
    pub(crate) fn refuse_bulk_data(&self, name: &str) -> Result<()> {
        match &self.bulk_data {
            None => Ok(()),
            Some(path) => Err(Error::Invalid(format!(
                "{name} holds member {path}: bulk data (DATA/) is never part of an \
                 opsi-backup archive (export writes it as separate tars, which are not \
                 imported); nothing imported"
            ))),
        }
    }

    /// Fails with every problem named when the archive is not intact.
    pub(crate) fn ensure_intact(&self, name: &str) -> Result<()> {
        let problems = self.problems();
        if problems.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
        Err(Error::Corrupt(format!(
            "{name} is not intact:\n{}",
            list.join("\n")
        )))
    }
}

impl Scan {
    fn note(&mut self, member: &Member) {
        if self.bulk_data.is_none() && named_like_bulk_data(&member.path) {
            self.bulk_data = Some(member.path.clone());
        }
        self.members += 1;
        // A snapshot's bulk data (millions of files) is remembered down to its products
        // (`DATA/DEPOT/win10-x64`): what a restore asks of it (`Survey::holds_below`). Only
        // archive content has CONTROL/checksums lines to be matched by full path.
        if layout::is_data(&member.path) {
            let unit: Vec<&str> = member.path.splitn(4, '/').take(3).collect();
            let unit = unit.join("/");
            if !self.present.contains(&unit) {
                self.present.insert(unit);
            }
        } else {
            self.present.insert(member.path.clone());
        }
        self.contains.note(&member.path);
    }

    fn control(&mut self, path: &str, bytes: &[u8]) {
        if path == control::CHECKSUMS {
            self.checksums = Some(Checksums::parse(bytes));
        } else {
            self.sysinfo = Some(control::parse_sysinfo(bytes));
        }
    }
}

/// A CONTROL member's bytes (small; capped so a hostile archive cannot exhaust memory).
fn read_control(path: &str, content: &mut dyn Read) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    content
        .take(256 << 20)
        .read_to_end(&mut buf)
        .map_err(read_err(path))?;
    Ok(buf)
}

/// `DATA` or below it, also written `./DATA/...` or `/DATA/...`.
fn named_like_bulk_data(path: &str) -> bool {
    let mut p = path;
    while let Some(rest) = p.strip_prefix("./").or_else(|| p.strip_prefix('/')) {
        p = rest;
    }
    p == "DATA" || layout::is_data(p)
}

pub(crate) fn is_control(path: &str) -> bool {
    path == control::CHECKSUMS || path == control::SYSINFO
}

fn is_checked(member: &Member) -> bool {
    member.kind == MemberKind::File && member.path.starts_with("CONTENT/")
}

fn read_err(path: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Corrupt(format!("cannot read member {path}: {e}"))
}

/// The hex sha1 of member `path`'s content, read to its end.
fn sha1_of(path: &str, content: &mut dyn Read) -> Result<String> {
    let mut tee = Sha1Reader::new(content);
    std::io::copy(&mut tee, &mut std::io::sink()).map_err(read_err(path))?;
    Ok(tee.hex())
}

impl MemberSink for Scan {
    fn add(&mut self, member: &Member, content: &mut dyn Read) -> Result<()> {
        self.note(member);
        let path = member.path.as_str();
        if is_control(path) {
            let buf = read_control(path, content)?;
            self.control(path, &buf);
            return Ok(());
        }
        if !is_checked(member) {
            return Ok(());
        }
        self.content_bytes += member.size;
        if is_planning_file(path) && member.size <= 1 << 20 {
            let mut buf = Vec::new();
            content.read_to_end(&mut buf).map_err(read_err(path))?;
            let sha1 = hex::encode(<sha1::Sha1 as sha1::Digest>::digest(&buf));
            self.computed.push((member.path.clone(), sha1));
            self.planning_files.insert(member.path.clone(), buf);
            return Ok(());
        }
        self.computed
            .push((member.path.clone(), sha1_of(path, content)?));
        Ok(())
    }

    /// Present, but its content unchecked: a restore that does not need it did not read it.
    fn pass_over(&mut self, member: &Member) -> Result<()> {
        if is_control(&member.path) {
            return Err(Error::Corrupt(format!(
                "{} was passed over unread: the backup cannot be checked without it",
                member.path
            )));
        }
        self.note(member);
        Ok(())
    }
}

/// The sha1 of the large CONTENT files of a backup (a MySQL dump), taken by a pass of their
/// own beside the `Scan` of the other members, which passes over them: on two cores the
/// first pass of a restore from a repository reads the dump and the file backend at once.
/// `Scan::absorb` takes the result in.
#[derive(Debug, Default)]
pub(crate) struct LargeContent(Vec<(String, String, u64)>);

impl LargeContent {
    /// From this size on a CONTENT file is a large one.
    const FROM: u64 = 16 << 20;

    /// Whether `member` is one of the files this pass takes (and `Scan` passes over): a
    /// CONTENT file (never a CONTROL member, nor a planning file `Scan` keeps, ≤ 1 MiB).
    pub(crate) fn takes(member: &Member) -> bool {
        is_checked(member) && member.size >= Self::FROM
    }
}

impl MemberSink for LargeContent {
    fn add(&mut self, member: &Member, content: &mut dyn Read) -> Result<()> {
        if !Self::takes(member) {
            return Ok(());
        }
        let sha1 = sha1_of(&member.path, content)?;
        self.0.push((member.path.clone(), sha1, member.size));
        Ok(())
    }

    fn pass_over(&mut self, _member: &Member) -> Result<()> {
        Ok(())
    }
}

impl Scan {
    /// Takes in the sha1 sums a `LargeContent` pass computed for the members this scan
    /// passed over.
    pub(crate) fn absorb(&mut self, large: LargeContent) {
        for (path, sha1, size) in large.0 {
            self.content_bytes += size;
            self.computed.push((path, sha1));
        }
    }
}

/// Passes members on to another sink while scanning them, so an archive is checked in the
/// same pass that imports or writes it.
pub(crate) struct Checked<S: MemberSink> {
    pub scan: Scan,
    pub inner: S,
}

impl<S: MemberSink> Checked<S> {
    pub(crate) fn new(inner: S) -> Checked<S> {
        Checked {
            scan: Scan::default(),
            inner,
        }
    }
}

impl<S: MemberSink> MemberSink for Checked<S> {
    fn add(&mut self, member: &Member, content: &mut dyn Read) -> Result<()> {
        let path = member.path.as_str();
        if is_control(path) {
            let buf = read_control(path, content)?;
            self.inner.add(member, &mut &buf[..])?;
            self.scan.note(member);
            self.scan.control(path, &buf);
            return Ok(());
        }
        if !is_checked(member) {
            self.scan.note(member);
            return self.inner.add(member, content);
        }
        let mut tee = Sha1Reader::new(content);
        self.inner.add(member, &mut tee)?;
        self.scan.note(member);
        self.scan.content_bytes += member.size;
        self.scan.computed.push((member.path.clone(), tee.hex()));
        Ok(())
    }

    fn pass_over(&mut self, member: &Member) -> Result<()> {
        self.scan.pass_over(member)?;
        self.inner.pass_over(member)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bulk data is remembered down to its products, archive content by full path.
    #[test]
    fn bulk_data_is_remembered_by_product() {
        let mut scan = Scan::default();
        for path in [
            "DATA/DEPOT",
            "DATA/DEPOT/win10",
            "DATA/DEPOT/win10/sources/install.wim",
            "DATA/DEPOT/win10/setup.exe",
            "DATA/DEPOT/firefox/x/y/z.msi",
            "DATA/TFTP/boot/grub.cfg",
            "CONTENT/CONF/opsi/opsi.conf",
        ] {
            scan.add(&Member::control(path, 0), &mut std::io::empty())
                .unwrap();
        }
        let mut held: Vec<&str> = scan.present.iter().map(String::as_str).collect();
        held.sort_unstable();
        assert_eq!(
            held,
            [
                "CONTENT/CONF/opsi/opsi.conf",
                "DATA/DEPOT",
                "DATA/DEPOT/firefox",
                "DATA/DEPOT/win10",
                "DATA/TFTP/boot"
            ]
        );
        assert_eq!(scan.members, 7);
    }

    /// A large CONTENT file passed over by the scan and summed by a `LargeContent` pass of
    /// its own is checked against CONTROL/checksums like any other once absorbed.
    #[test]
    fn a_large_file_summed_apart_counts_against_the_checksums() {
        let big = vec![7u8; (LargeContent::FROM + 1) as usize];
        let path = "CONTENT/BACKENDS/MYSQL/mysql/database.sql";
        let member = Member::control(path, big.len() as u64);
        assert!(LargeContent::takes(&member));
        assert!(!LargeContent::takes(&Member::control(path, 1000)));
        let sha1 = hex::encode(<sha1::Sha1 as sha1::Digest>::digest(&big));
        for (content, intact) in [(big.clone(), true), ([&big[1..], b"x"].concat(), false)] {
            let mut scan = Scan::default();
            scan.pass_over(&member).unwrap();
            let sums = format!("{sha1} {path}\n");
            let control = Member::control(control::CHECKSUMS, sums.len() as u64);
            scan.add(&control, &mut sums.as_bytes()).unwrap();
            let sysinfo = Member::control(control::SYSINFO, 0);
            scan.add(&sysinfo, &mut std::io::empty()).unwrap();
            let mut large = LargeContent::default();
            large.add(&member, &mut &content[..]).unwrap();
            scan.absorb(large);
            assert_eq!(scan.problems().is_empty(), intact, "{:?}", scan.problems());
            assert_eq!(scan.content_bytes, big.len() as u64);
        }
    }
}
