//! `rebuild-index`: recreates index.sqlite from the pack and snapshot files alone.

use clap::Args;

use crate::cli::{repo, Global};

#[derive(Args, Debug)]
pub struct RebuildIndexArgs {}

pub fn run(g: &Global, _a: RebuildIndexArgs) -> anyhow::Result<i32> {
    let r = repo::open(g)?;
    let report = r.rebuild_index()?;
    println!(
        "index rebuilt: {} packs, {} snapshots",
        report.packs, report.snapshots
    );
    for s in &report.skipped {
        eprintln!("WARNING: skipped {s}");
    }
    Ok(0)
}
