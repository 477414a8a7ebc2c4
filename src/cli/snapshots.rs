//! `snapshots [--host H] [--latest N] [--json]`: the repository's snapshots, oldest first.

use clap::Args;

use crate::cli::{human, json, output, repo, Global};
use crate::store::SnapshotInfo;

#[derive(Args, Debug)]
pub struct SnapshotsArgs {
    /// Only the snapshots of this host (its fqdn, as the HOST column shows it). Repeatable.
    #[arg(long, value_name = "HOST")]
    pub host: Vec<String>,
    /// Only the N newest snapshots of each host.
    #[arg(long, value_name = "N")]
    pub latest: Option<usize>,
    /// Print a JSON array of snapshot objects (id, short_id, time, time_rfc3339, host,
    /// backends, size, added, ...; see docs/json.md).
    #[arg(long)]
    pub json: bool,
}

/// The snapshots `--host` and `--latest` leave, still oldest first.
fn select(list: Vec<SnapshotInfo>, a: &SnapshotsArgs) -> Vec<SnapshotInfo> {
    // The index lists them in the one order by age, oldest first.
    let list: Vec<SnapshotInfo> = list
        .into_iter()
        .filter(|s| a.host.is_empty() || a.host.contains(&s.host))
        .collect();
    let Some(n) = a.latest else {
        return list;
    };
    // Newest first, counting per host, then back into the one order.
    let mut seen = std::collections::HashMap::<String, usize>::new();
    let mut kept: Vec<SnapshotInfo> = list
        .into_iter()
        .rev()
        .filter(|s| {
            let c = seen.entry(s.host.clone()).or_default();
            *c += 1;
            *c <= n
        })
        .collect();
    kept.reverse();
    kept
}

pub(super) fn snapshots(g: &Global, a: SnapshotsArgs) -> anyhow::Result<i32> {
    let r = repo::open(g)?;
    let list = select(r.snapshots()?, &a);
    if a.json {
        json::print(&list.iter().map(json::Snapshot::from).collect::<Vec<_>>())?;
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
            match s.kind() {
                crate::store::SnapshotKind::Opsiconfd => "opsiconfd backup".to_string(),
                crate::store::SnapshotKind::OpsiBackup => s.backends.join(","),
            },
            human::bytes(s.size),
            human::bytes(s.added)
        );
    }
    say!("{}", output::count(list.len() as u64, "snapshot"));
    Ok(0)
}
