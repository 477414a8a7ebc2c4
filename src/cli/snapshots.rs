//! `snapshots [--json]`: the repository's snapshots, oldest first.

use clap::Args;

use crate::cli::{human, repo, Global};

#[derive(Args, Debug)]
pub struct SnapshotsArgs {
    /// Print a JSON array of objects (id, time, host, backends, size, added, ...).
    #[arg(long)]
    pub json: bool,
}

pub(super) fn snapshots(g: &Global, a: SnapshotsArgs) -> anyhow::Result<i32> {
    let r = repo::open(g)?;
    let list = r.snapshots()?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(0);
    }
    println!(
        "{:<12}  {:<19}  {:<28}  {:<26}  {:>10}  {:>10}",
        "ID", "TIME", "HOST", "CONTAINS", "SIZE", "ADDED"
    );
    for s in &list {
        println!(
            "{:<12}  {:<19}  {:<28}  {:<26}  {:>10}  {:>10}",
            human::short(&s.id),
            crate::logging::local_time(s.time),
            s.host,
            s.backends.join(","),
            human::bytes(s.size),
            human::bytes(s.added)
        );
    }
    println!("{} snapshots", list.len());
    Ok(0)
}
