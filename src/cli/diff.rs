//! `diff A B`: what changed from backup A to backup B (snapshots, or archive files), by member
//! and in opsi terms; for MySQL dumps, which tables changed. Answers "what changed since the
//! last good night?". Two opsiconfd snapshots are compared object by object instead
//! (`opsiconfd::objects`): hosts, products, product states, configs, config files.

use std::path::PathBuf;

use clap::Args;

use crate::archive::archive_file;
use crate::cli::{json, repo, Global};
use crate::diff::{self, Change, Diff, Fingerprints, SnapshotPrints};
use crate::error::Error;
use crate::opsiconfd::objects::{self, Inventory};
use crate::parent::ChunkHash;
use crate::store::{SnapshotInfo, SnapshotKind};

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

/// Two snapshots of the repository, compared by their members' chunk lists: bulk data is
/// neither read (but where two lists of equal size differ) nor held in memory (`diff::bulk`).
fn compare_snapshots(g: &Global, a: &DiffArgs) -> anyhow::Result<Diff> {
    let r = repo::open(g)?;
    let (x, y) = (
        r.resolve(&a.a.to_string_lossy())?,
        r.resolve(&a.b.to_string_lossy())?,
    );
    let reader = r.member_chunks()?;
    let bytes = reader.bytes();
    let mut same = |p: &[ChunkHash], q: &[ChunkHash], what: &str| bytes.same(p, q, what);
    let wants = SnapshotPrints::wants_content;
    let mut prints = SnapshotPrints::new(Some(r.root()));
    reader.members(&x.id, &wants, &mut |m, chunks, content| {
        prints.add(m, chunks, content)
    })?;
    let mut cmp = prints.against()?;
    reader.members(&y.id, &wants, &mut |m, chunks, content| {
        cmp.add(m, chunks, content, &mut same)
    })?;
    Ok(cmp.finish(&mut same)?)
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

/// The two snapshots when both are opsiconfd backups; an error when only one is.
fn opsiconfd_pair(
    g: &Global,
    a: &DiffArgs,
) -> anyhow::Result<Option<(crate::store::Repository, SnapshotInfo, SnapshotInfo)>> {
    if repo::is_archive(g, &a.a) || repo::is_archive(g, &a.b) {
        return Ok(None);
    }
    let r = repo::open(g)?;
    let x = r.resolve(&a.a.to_string_lossy())?;
    let y = r.resolve(&a.b.to_string_lossy())?;
    match (x.kind(), y.kind()) {
        (SnapshotKind::Opsiconfd, SnapshotKind::Opsiconfd) => Ok(Some((r, x, y))),
        (SnapshotKind::OpsiBackup, SnapshotKind::OpsiBackup) => Ok(None),
        _ => Err(Error::Invalid(
            "an opsiconfd backup and an opsi-backup snapshot hold different kinds of data; \
             diff compares two of the same kind"
                .into(),
        )
        .into()),
    }
}

fn diff_opsiconfd(
    r: &crate::store::Repository,
    x: &SnapshotInfo,
    y: &SnapshotInfo,
    as_json: bool,
) -> anyhow::Result<i32> {
    let mut inv = [Inventory::default(), Inventory::default()];
    r.replay(&x.id, &mut inv[0])?;
    r.replay(&y.id, &mut inv[1])?;
    let d = objects::compare(&inv[0], &inv[1]);
    if as_json {
        json::print(&json::OpsiconfdDiffDoc {
            schema: json::schema("diff"),
            kind: "opsiconfd",
            diff: &d,
        })?;
        return Ok(0);
    }
    for o in &d.objects {
        say!("{}  {} {}", o.change.sign(), o.class, o.ident);
    }
    for f in &d.config_files {
        say!("{}  config file {} ({})", f.change.sign(), f.name, f.path);
    }
    let count = |class: &str| d.classes.get(class).cloned().unwrap_or_default();
    for (label, class) in [
        ("hosts", "Host"),
        ("products", "Product"),
        ("product states", "ProductOnClient"),
        ("configs", "Config"),
        ("config states", "ConfigState"),
    ] {
        let c = count(class);
        say!(
            "{label}: {} added, {} removed, {} changed",
            c.added,
            c.removed,
            c.changed
        );
    }
    let files = |c: objects::Change| d.config_files.iter().filter(|f| f.change == c).count();
    say!(
        "config files: {} added, {} removed, {} changed; {} objects differ in all",
        files(objects::Change::Added),
        files(objects::Change::Removed),
        files(objects::Change::Changed),
        d.objects.len()
    );
    Ok(0)
}

pub(super) fn diff(g: &Global, a: DiffArgs) -> anyhow::Result<i32> {
    if let Some((r, x, y)) = opsiconfd_pair(g, &a)? {
        return diff_opsiconfd(&r, &x, &y, a.json);
    }
    let d = if repo::is_archive(g, &a.a) || repo::is_archive(g, &a.b) {
        diff::compare(&fingerprints(g, &a.a)?, &fingerprints(g, &a.b)?)
    } else {
        compare_snapshots(g, &a)?
    };
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
    for p in &d.products {
        let what = match p.change {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Changed | Change::Metadata => "changed",
        };
        say!(
            "{}  product {} in the depot {what}: {} files added, {} removed, {} changed",
            sign(p.change),
            p.product,
            p.added,
            p.removed,
            p.changed
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
    if !d.products.is_empty() {
        let products = |c: Change| d.products.iter().filter(|p| p.change == c).count();
        say!(
            "depot products: {} added, {} removed, {} changed",
            products(Change::Added),
            products(Change::Removed),
            products(Change::Changed)
        );
    }
    Ok(0)
}
