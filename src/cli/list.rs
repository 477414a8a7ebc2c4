//! `list FILE...`: verifies each archive, then prints `<path> contains: <parts>`. With a
//! repository, `list SNAPSHOT` does the same for a snapshot; `--long` lists its members.

use std::path::PathBuf;

use clap::Args;

use crate::archive::archive_file;
use crate::archive::scan::Contains;
use crate::cli::{human, repo, Global};
use crate::member::MemberKind;

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Backup archives, or with a repository snapshots (`latest` or an id prefix).
    #[arg(required = true, value_name = "FILE|SNAPSHOT")]
    pub files: Vec<PathBuf>,
    /// List every member of a snapshot: type, mode, owner, size, mtime, path.
    #[arg(long)]
    pub long: bool,
}

pub(super) fn list(g: &Global, a: ListArgs) -> anyhow::Result<i32> {
    for file in &a.files {
        if repo::is_archive(g, file) {
            let scan = archive_file::scan(file)?;
            scan.ensure_intact(&file.display().to_string())?;
            let shown = std::path::absolute(file).unwrap_or_else(|_| file.clone());
            println!(
                "{} contains: {}",
                shown.display(),
                scan.contains.names().join(", ")
            );
            continue;
        }
        let r = repo::open(g)?;
        let info = r.resolve(&file.to_string_lossy())?;
        let members = r.members(&info.id)?;
        let mut contains = Contains::default();
        for m in &members {
            contains.note(&m.path);
        }
        println!(
            "{} contains: {}",
            human::short(&info.id),
            contains.names().join(", ")
        );
        if a.long {
            for m in &members {
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
                println!(
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
    }
    Ok(0)
}
