//! `list FILE...`: verifies each archive, then prints `<path> contains: <parts>`. With a
//! repository, `list SNAPSHOT` does the same for a snapshot. `--long` lists the members of
//! either, one line each (an archive's as it reads them, in the pass that verifies it).

use std::io::Read;
use std::path::PathBuf;

use clap::Args;

use crate::archive::archive_file;
use crate::archive::scan::{Checked, Contains};
use crate::cli::{human, repo, Global};
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
            continue;
        }
        let r = repo::open(g)?;
        let info = r.resolve(&file.to_string_lossy())?;
        let members = r.members(&info.id)?;
        let mut contains = Contains::default();
        for m in &members {
            contains.note(&m.path);
        }
        say!(
            "{} contains: {}",
            human::short(&info.id),
            contains.names().join(", ")
        );
        if a.long {
            print_members(&members);
        }
    }
    Ok(0)
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
        say!(
            "{t}{:04o} {}/{} {:>12} {} {}{link}",
            m.mode,
            m.uname,
            m.gname,
            m.size,
            crate::logging::local_time(m.mtime.secs),
            m.path
        );
    }
}
