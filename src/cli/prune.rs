//! `prune [--dry-run] [--repack-threshold PERCENT] [--json]`: deletes the packs no snapshot
//! needs any more and rewrites packs that are mostly unused; reports the bytes freed.

use clap::Args;

use crate::cli::{human, json, output, repo, Global};
use crate::store::{PruneOptions, PruneReport};

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Only show what would be deleted and freed (estimates for rewritten packs).
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Rewrite a pack holding unused data when less than PERCENT of it is still used.
    #[arg(long, value_name = "PERCENT", default_value_t = 50.0,
          value_parser = parse_percent)]
    pub repack_threshold: f64,
    /// Print the report as JSON (docs/json.md).
    #[arg(long)]
    pub json: bool,
}

fn parse_percent(s: &str) -> Result<f64, String> {
    match s.trim_end_matches('%').parse::<f64>() {
        Ok(v) if (0.0..=100.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a percentage between 0 and 100")),
    }
}

pub(super) fn prune(g: &Global, a: PruneArgs) -> anyhow::Result<i32> {
    let r = repo::open(g)?;
    let report = r.prune(PruneOptions {
        dry_run: a.dry_run,
        repack_threshold: a.repack_threshold / 100.0,
    })?;
    if a.json {
        json::print(&json::Prune {
            schema: json::schema("prune"),
            report: &report,
        })?;
    } else {
        print_report(&report);
    }
    Ok(0)
}

/// The report for people; also used by `forget --prune`.
pub(super) fn print_report(r: &PruneReport) {
    let would = if r.dry_run { "would be " } else { "" };
    output::summary(format!(
        "packs: {} {would}deleted, {} {would}rewritten into {} new, {} of {} kept",
        r.packs_deleted,
        r.packs_repacked,
        r.packs_written,
        r.packs_before - r.packs_deleted - r.packs_repacked,
        r.packs_before
    ));
    output::summary(format!(
        "chunks: {} used by {}, {} unused {would}removed from the index",
        r.chunks_used,
        output::count(r.snapshots, "snapshot"),
        r.chunks_deleted
    ));
    output::summary(format!(
        "{}: {} ({} bytes); packs {} -> {}",
        if r.dry_run { "would free" } else { "freed" },
        human::bytes(r.bytes_freed),
        r.bytes_freed,
        human::bytes(r.bytes_before),
        human::bytes(r.bytes_after)
    ));
    if r.uploads_aborted > 0 {
        output::summary(format!(
            "unfinished uploads of killed writers {}aborted: {}",
            if r.dry_run { "that would be " } else { "" },
            r.uploads_aborted
        ));
    }
    if r.unused_bytes_kept > 0 {
        say!(
            "unused data left in packs not worth rewriting: about {}",
            human::bytes(r.unused_bytes_kept)
        );
    }
}
