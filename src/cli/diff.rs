//! `diff A B`: what changed from backup A to backup B (snapshots, or archive files), by member
//! and in opsi terms; for MySQL dumps, which tables changed. Answers "what changed since the
//! last good night?".

use std::path::PathBuf;

use clap::Args;

use crate::archive::archive_file;
use crate::cli::{json, repo, Global};
use crate::diff::{self, Change, Fingerprints};

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The older backup: a snapshot (`latest`, an id prefix) or an archive file.
    #[arg(value_name = "A")]
    pub a: PathBuf,
    /// The newer backup.
    #[arg(value_name = "B")]
    pub b: PathBuf,
    /// Print the differences as JSON (docs/json.md).
    #[arg(long)]
    pub json: bool,
}

fn fingerprints(g: &Global, arg: &std::path::Path) -> anyhow::Result<Fingerprints> {
    let mut f = Fingerprints::default();
    if repo::is_archive(g, arg) {
        repo::ensure_not_snapshot(g, arg)?;
        archive_file::replay(arg, &mut f)?;
    } else {
        let r = repo::open(g)?;
        let info = r.resolve(&arg.to_string_lossy())?;
        r.replay(&info.id, &mut f)?;
    }
    Ok(f)
}

pub(super) fn diff(g: &Global, a: DiffArgs) -> anyhow::Result<i32> {
    let d = diff::compare(&fingerprints(g, &a.a)?, &fingerprints(g, &a.b)?);
    if a.json {
        json::print(&json::DiffDoc {
            schema: json::schema("diff"),
            diff: &d,
        })?;
        return Ok(0);
    }
    let sign = |c: Change| match c {
        Change::Added => '+',
        Change::Removed => '-',
        Change::Changed => 'M',
        Change::Metadata => 'U',
    };
    // Every member the JSON lists, CONTROL/checksums and CONTROL/sysinfo too: a changed
    // checksum list is what an archive-level compare sees first.
    for m in &d.members {
        match &m.opsi {
            Some(o) => say!("{}  {}  ({o})", sign(m.change), m.member),
            None => say!("{}  {}", sign(m.change), m.member),
        }
    }
    for t in &d.tables {
        say!(
            "{}  table {} in {}: {} -> {} rows",
            sign(t.change),
            t.table,
            t.dump,
            t.rows_before,
            t.rows_after
        );
    }
    let count = |c: Change| d.members.iter().filter(|m| m.change == c).count();
    say!(
        "{} added, {} removed, {} changed, {} metadata only; {} tables changed",
        count(Change::Added),
        count(Change::Removed),
        count(Change::Changed),
        count(Change::Metadata),
        d.tables.len()
    );
    Ok(0)
}
