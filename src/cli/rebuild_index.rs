//! `rebuild-index`: recreates index.sqlite from the pack and snapshot files alone. Reports
//! exactly what could not be indexed; exits 1 (detailed codes: 3, damage) when a snapshot or
//! pack was left out.

use clap::Args;

use crate::cli::exit_code::ExitCode;
use crate::cli::{output, repo, Global};
use crate::logging;
use crate::store::RebuildReport;

#[derive(Args, Debug)]
pub struct RebuildIndexArgs {}

pub(super) fn rebuild_index(g: &Global, _a: RebuildIndexArgs) -> anyhow::Result<i32> {
    let r = repo::open_for_rebuild(g)?;
    let report = r.rebuild_index()?;
    output::summary(format!(
        "index rebuilt: {}, {}",
        output::count(report.packs as u64, "pack"),
        output::count(report.snapshots as u64, "snapshot")
    ));
    print_problems(&report);
    let complete = report.skipped.is_empty() && report.lost.is_empty();
    let code = if complete {
        ExitCode::Success
    } else {
        ExitCode::Damage
    };
    Ok(code.code(g.codes()))
}

fn print_problems(report: &RebuildReport) {
    for s in &report.repaired {
        logging::labelled(
            logging::WARNING,
            "WARNING",
            &format!("{s} (nothing lost; run `verify`)"),
        );
    }
    for s in &report.skipped {
        logging::labelled(logging::WARNING, "WARNING", &format!("skipped {s}"));
    }
    for l in &report.lost {
        logging::labelled(
            logging::ERROR,
            "LOST",
            &format!(
                "snapshot {} of {} ({}) cannot be restored and was left out of the index:",
                l.id,
                logging::local_time(l.time),
                l.host
            ),
        );
        if !l.meta_chunks.is_empty() {
            eprintln!(
                "  its member list: metadata chunks in no readable pack: {}",
                l.meta_chunks.join(", ")
            );
        }
        for m in &l.members {
            eprintln!(
                "  member {}: chunks in no readable pack: {}",
                m.path,
                m.chunks.join(", ")
            );
        }
        if let Some(why) = &l.unreadable {
            eprintln!("  and its member list cannot be read further: {why}");
        }
    }
    let chunks = report.lost_chunks();
    if !chunks.is_empty() {
        logging::labelled(
            logging::ERROR,
            "LOST",
            &format!(
                "{}, {}: {}",
                output::count(report.lost.len() as u64, "snapshot"),
                output::count(chunks.len() as u64, "chunk"),
                chunks.join(", ")
            ),
        );
    }
}
