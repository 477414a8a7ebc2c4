//! `list FILE...`: verifies each archive, then prints `<path> contains: <parts>`. With a
//! repository, `list SNAPSHOT` does the same for a snapshot. `--long` lists the members of
//! either, one line each (an archive's as it reads them, in the pass that verifies it).

use std::io::Read;
use std::path::PathBuf;

use clap::Args;

use crate::archive::archive_file;
use crate::archive::scan::{Checked, Contains};
use crate::cli::{human, json, repo, Global};
use crate::error::{IoContext, Result};
use crate::member::{Member, MemberKind};
use crate::sink::MemberSink;

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Backup archives, or with a repository snapshots (`latest` or an id prefix).
    #[arg(required = true, value_name = "FILE|SNAPSHOT")]
    pub files: Vec<PathBuf>,
    /// Also list every member: type, mode, owner, size, mtime, path.
    #[arg(long)]
    pub long: bool,
    /// Print what each contains (and with --long its members) as JSON (docs/json.md).
    #[arg(long)]
    pub json: bool,
}

/// Keeps the members passing by (their content is only read through, for the checksums).
#[derive(Default)]
struct Members(Vec<Member>);

impl MemberSink for Members {
    fn add(&mut self, member: &Member, content: &mut dyn Read) -> Result<()> {
        std::io::copy(content, &mut std::io::sink()).ctx(format!("reading {}", member.path))?;
        self.0.push(member.clone());
        Ok(())
    }
}

pub(super) fn list(g: &Global, a: ListArgs) -> anyhow::Result<i32> {
    let mut items = Vec::new();
    let entries = |members: &[Member]| {
        a.long
            .then(|| members.iter().map(json::MemberEntry::from).collect())
    };
    for file in &a.files {
        if repo::is_archive(g, file) {
            repo::ensure_not_snapshot(g, file)?;
            let (scan, members) = if a.long {
                let mut checked = Checked::new(Members::default());
                archive_file::replay(file, &mut checked)?;
                (checked.scan, checked.inner.0)
            } else {
                (archive_file::scan(file)?, Vec::new())
            };
            scan.ensure_intact(&file.display().to_string())?;
            let shown = std::path::absolute(file).unwrap_or_else(|_| file.clone());
            say!(
                "{} contains: {}",
                shown.display(),
                scan.contains.names().join(", ")
            );
            print_members(&members);
            items.push(json::Listed {
                archive: Some(shown.display().to_string()),
                snapshot: None,
                contains: names(&scan.contains),
                members: entries(&members),
            });
            continue;
        }
        let r = repo::open(g)?;
        let info = r.resolve(&file.to_string_lossy())?;
        let members = r.members(&info.id)?;
        let mut contains = Contains::default();
        for m in &members {
            contains.note(&m.path);
        }
        let shown = match info.kind() {
            crate::store::SnapshotKind::Opsiconfd => "an opsiconfd backup".to_string(),
            crate::store::SnapshotKind::OpsiBackup => contains.names().join(", "),
        };
        say!("{} contains: {shown}", human::short(&info.id));
        if a.long {
            print_members(&members);
        }
        items.push(json::Listed {
            archive: None,
            snapshot: Some(json::Snapshot::from(&info)),
            contains: names(&contains),
            members: entries(&members),
        });
    }
    if a.json {
        json::print(&json::List {
            schema: json::schema("list"),
            items,
        })?;
    }
    Ok(0)
}

fn names(contains: &Contains) -> Vec<String> {
    contains.names().iter().map(|s| s.to_string()).collect()
}

fn print_members(members: &[Member]) {
    for m in members {
        let t = match &m.kind {
            MemberKind::Dir => 'd',
            MemberKind::Symlink(_) => 'l',
            MemberKind::Hardlink(_) => 'h',
            MemberKind::File => '-',
            MemberKind::Other(_) => '?',
        };
        let link = match &m.kind {
            MemberKind::Symlink(t) | MemberKind::Hardlink(t) => format!(" -> {t}"),
            _ => String::new(),
        };
        // As ls marks a file with an ACL: `+` after the mode, here for any attribute.
        let attrs = if m.xattrs.is_empty() { ' ' } else { '+' };
        say!(
            "{t}{:04o}{attrs}{}/{} {:>12} {} {}{link}",
            m.mode,
            m.uname,
            m.gname,
            m.size,
            crate::logging::local_time(m.mtime.secs),
            m.path
        );
    }
}
