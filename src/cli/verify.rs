//! `verify FILE...`: re-computes every member's sha1; names each corrupt or missing member.
//! Prints `Verified` or `Verification failed`; exit 0 only when every archive is intact.
//! A verify of the whole repository is recorded for `health` (`state/last-verify.json`).
//! With a repository, `verify [SNAPSHOT]` re-reads, decompresses and re-hashes every chunk
//! (of one snapshot, or of the whole repository) and names the pack, chunk, snapshots and
//! members behind each problem; one opsi-backup snapshot is also checked against its
//! CONTROL/checksums, one opsiconfd snapshot by putting its document together.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::archive::{archive_file, scan::Scan};
use crate::cli::exit_code::ExitCode;
use crate::cli::progress::{self, ProgressSink};
use crate::cli::{health, human, json, output, repo, Global};
use crate::logging;
use crate::opsiconfd::Joiner;
use crate::store::{DataSubset, SnapshotKind, VerifyOptions, VerifyProgress};

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Backup archives; with a repository, at most one snapshot (default: everything).
    #[arg(value_name = "FILE|SNAPSHOT")]
    pub files: Vec<PathBuf>,
    /// Rolling verify of the repository: read back only `n/m` of the packs (slice n of m,
    /// fixed by pack name), `P%` of them or up to a size (`2G`), verified longest ago first.
    /// Metadata is checked in full.
    #[arg(long, value_name = "n/m|P%|SIZE", value_parser = DataSubset::parse)]
    pub read_data_subset: Option<DataSubset>,
    /// Rolling verify of the repository: start no pack after this long (`10min`, `1h`); the
    /// packs verified longest ago go first, the rest wait for the next night.
    #[arg(long, value_name = "DURATION", value_parser = health::threshold::duration)]
    pub max_duration: Option<u64>,
    /// Print the result and every problem as JSON (docs/json.md).
    #[arg(long)]
    pub json: bool,
}

pub(super) fn verify(g: &Global, a: VerifyArgs) -> anyhow::Result<i32> {
    for f in &a.files {
        repo::ensure_not_snapshot(g, f)?;
    }
    let archives = !a.files.is_empty() && a.files.iter().all(|f| repo::is_archive(g, f));
    let (failed, items, repository) = if archives {
        let items = verify_archives(&a.files);
        let failed = items.iter().any(|i| !i.ok);
        (failed.then_some(ExitCode::Failure), items, None)
    } else if g.repository.is_some() {
        let (items, checked) = verify_repository(g, &a)?;
        let failed = items.iter().any(|i| !i.ok);
        (failed.then_some(ExitCode::Damage), items, Some(checked))
    } else {
        anyhow::bail!("verify needs archive files, or a repository (--repository DIR)");
    };
    if a.json {
        json::print(&json::Verify {
            schema: json::schema("verify"),
            ok: failed.is_none(),
            items,
            repository,
        })?;
    }
    output::summary(if failed.is_some() {
        "Verification failed"
    } else {
        "Verified"
    });
    Ok(failed.unwrap_or(ExitCode::Success).code(g.codes()))
}

/// Each archive checked, with its problems (each also logged as an error).
fn verify_archives(files: &[PathBuf]) -> Vec<json::Verified> {
    let mut items = Vec::new();
    for file in files {
        let mut found = Vec::new();
        logging::info(format!("Verifying archive {}", file.display()));
        let mut scan = Scan::default();
        let bar = progress::bar("verify", None);
        let read = archive_file::replay(file, &mut ProgressSink::new(&mut scan, bar.clone()));
        bar.finish_and_clear();
        match read {
            Ok(_) => {
                let problems = scan.problems();
                if problems.is_empty() {
                    logging::notice(format!("Archive {} is OK.", file.display()));
                } else {
                    for p in problems {
                        logging::error(format!("{}: {p}", file.display()));
                        found.push(p.to_string());
                    }
                }
            }
            Err(e) => {
                logging::error(e.to_string());
                found.push(e.to_string());
            }
        }
        items.push(json::Verified {
            archive: Some(file.display().to_string()),
            snapshot: None,
            ok: found.is_empty(),
            problems: found,
        });
    }
    items
}

/// The repository (or one snapshot) checked: one item with every problem, and the counts.
fn verify_repository(
    g: &Global,
    a: &VerifyArgs,
) -> anyhow::Result<(Vec<json::Verified>, json::RepositoryChecked)> {
    let r = repo::open(g)?;
    if a.files.len() > 1 {
        anyhow::bail!("verify takes at most one snapshot");
    }
    let info = match a.files.first() {
        Some(s) => Some(r.resolve(&s.to_string_lossy())?),
        None => None,
    };
    let bar = progress::bar("verify", Some(0));
    let shown = bar.clone();
    let opts = VerifyOptions {
        subset: a.read_data_subset.unwrap_or_default(),
        max_duration: a.max_duration.map(Duration::from_secs),
        progress: Some(Arc::new(move |step| match step {
            VerifyProgress::Total(t) => shown.set_length(t),
            VerifyProgress::Done(b) => shown.inc(b),
        })),
    };
    if info.is_some() && !opts.reads_everything() {
        anyhow::bail!(
            "--read-data-subset and --max-duration share out a verify of the whole \
             repository; a snapshot's verify reads all of its data"
        );
    }
    let report = r.verify_with(info.as_ref().map(|i| i.id.as_str()), &opts);
    bar.finish_and_clear();
    let report = report?;
    let mut found = Vec::new();
    for p in &report.problems {
        logging::error(p.to_string());
        found.push(p.to_string());
    }
    for n in &report.notes {
        logging::labelled(logging::NOTICE, "NOTE", n);
    }
    // A snapshot's members are also checked against its own CONTROL/checksums.
    // An opsiconfd snapshot's streams are put together instead and checked against the
    // document's length and BLAKE3 recorded at import.
    if let (Some(info), true) = (&info, report.is_ok()) {
        if info.kind() == SnapshotKind::Opsiconfd {
            let mut joiner = Joiner::new(std::io::sink());
            if let Err(e) = r
                .replay(&info.id, &mut joiner)
                .and_then(|()| joiner.finish().map(|_| ()))
            {
                let p = format!("snapshot {}: {e}", human::short(&info.id));
                logging::error(&p);
                found.push(p);
            }
        }
    }
    if let (Some(info), true) = (
        info.as_ref()
            .filter(|i| i.kind() == SnapshotKind::OpsiBackup),
        report.is_ok(),
    ) {
        let mut scan = Scan::default();
        match r.replay(&info.id, &mut scan) {
            Ok(()) => {
                for p in scan.problems() {
                    let p = format!("snapshot {}: {p}", human::short(&info.id));
                    logging::error(&p);
                    found.push(p);
                }
            }
            Err(e) => {
                logging::error(e.to_string());
                found.push(e.to_string());
            }
        }
    }
    logging::notice(format!(
        "checked {}, {}, {} ({})",
        output::count(report.snapshots as u64, "snapshot"),
        output::count(report.packs as u64, "pack"),
        output::count(report.chunks as u64, "chunk"),
        human::bytes(report.bytes)
    ));
    if report.packs_skipped > 0 {
        logging::notice(format!(
            "{} not read back this time (rolling verify; the longest unverified go first next time)",
            output::count(report.packs_skipped, "pack")
        ));
    }
    let item = json::Verified {
        archive: None,
        snapshot: info.as_ref().map(json::Snapshot::from),
        ok: found.is_empty(),
        problems: found,
    };
    let checked = json::RepositoryChecked {
        snapshots: report.snapshots,
        packs: report.packs,
        chunks: report.chunks,
        bytes: report.bytes,
        packs_skipped: report.packs_skipped,
        notes: report.notes,
    };
    Ok((vec![item], checked))
}
