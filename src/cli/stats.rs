//! `stats`: repository size on disk, logical size of all snapshots, dedup ratio, and what each
//! snapshot added.

use clap::Args;

use crate::cli::json::{self, Stats};
use crate::cli::{human, repo, Global};

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Print the figures as JSON (docs/json.md).
    #[arg(long)]
    pub json: bool,
}

fn disk_usage(path: &std::path::Path) -> u64 {
    walkdir::WalkDir::new(path)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

pub(super) fn stats(g: &Global, a: StatsArgs) -> anyhow::Result<i32> {
    let r = repo::open(g)?;
    let list = r.snapshots()?;
    // The export cache is not backup data (it can be deleted at any time): counted apart.
    // A remote repository's size is that of its packs (its snapshot files are small).
    let cache = disk_usage(&r.root().join("cache"));
    let disk = if r.is_remote() {
        r.pack_bytes()?
    } else {
        disk_usage(r.root()).saturating_sub(cache)
    };
    let logical: u64 = list.iter().map(|s| s.size).sum();
    let stats = Stats {
        schema: json::schema("stats"),
        snapshots: list.len(),
        disk_bytes: disk,
        export_cache_bytes: cache,
        logical_bytes: logical,
        dedup_ratio: if disk == 0 {
            0.0
        } else {
            logical as f64 / disk as f64
        },
        per_snapshot: list.iter().map(json::Snapshot::from).collect(),
    };
    if a.json {
        json::print(&stats)?;
        return Ok(0);
    }
    say!("snapshots:          {}", stats.snapshots);
    say!("size on disk:       {}", human::bytes(disk));
    if cache > 0 {
        say!(
            "export cache:       {} (compressed archive segments for faster exports; may be deleted)",
            human::bytes(cache)
        );
    }
    say!(
        "logical size:       {} (all snapshots as full archives, uncompressed)",
        human::bytes(logical)
    );
    say!("dedup+compression:  {:.1}x", stats.dedup_ratio);
    say!();
    say!(
        "{:<12}  {:<19}  {:>10}  {:>10}",
        "ID",
        "TIME",
        "SIZE",
        "ADDED"
    );
    for s in &list {
        say!(
            "{:<12}  {:<19}  {:>10}  {:>10}",
            human::short(&s.id),
            crate::logging::local_time(s.time),
            human::bytes(s.size),
            human::bytes(s.added)
        );
    }
    Ok(0)
}
