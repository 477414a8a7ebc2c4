//! `snapshots [--json]`: the repository's snapshots, oldest first.

use clap::Args;

use crate::cli::{human, output, repo, Global};

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
    say!(
        "{:<12}  {:<19}  {:<28}  {:<26}  {:>10}  {:>10}",
        "ID",
        "TIME",
        "HOST",
        "CONTAINS",
        "SIZE",
        "ADDED"
    );
    for s in &list {
        say!(
            "{:<12}  {:<19}  {:<28}  {:<26}  {:>10}  {:>10}",
            human::short(&s.id),
            crate::logging::local_time(s.time),
            s.host,
            s.backends.join(","),
            human::bytes(s.size),
            human::bytes(s.added)
        );
    }
    say!("{}", output::count(list.len() as u64, "snapshot"));
    Ok(0)
}
