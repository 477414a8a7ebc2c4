//! `copy --from-repository A [SNAPSHOT…]`: snapshots of repository A written into the
//! repository (`--repository`), which takes only the chunks it lacks (see `store::copy`).

use std::path::PathBuf;

use clap::Args;

use crate::cli::{human, json, output, repo, repo_password, Global};
use crate::logging;
use crate::store::{Repository, SnapshotInfo, SnapshotKind};

#[derive(Args, Debug)]
pub struct CopyArgs {
    /// The repository to copy from; the one copied into is --repository.
    #[arg(
        long,
        value_name = "DIR",
        env = "OPSI_BACKUP_FROM_REPOSITORY",
        hide_env_values = true
    )]
    pub from_repository: PathBuf,
    /// The file holding the password of the source repository when it is encrypted
    /// (otherwise it is asked on the terminal); --password-file is the target's.
    #[arg(
        long,
        value_name = "FILE",
        env = "OPSI_BACKUP_FROM_PASSWORD_FILE",
        hide_env_values = true
    )]
    pub from_password_file: Option<PathBuf>,
    /// Snapshots of the source to copy (ids, unique prefixes, `latest`); default: every
    /// snapshot not copied yet.
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    /// Print what was copied and skipped as JSON (docs/json.md).
    #[arg(long)]
    pub json: bool,
}

pub(super) fn copy(g: &Global, a: CopyArgs) -> anyhow::Result<i32> {
    let mut to = repo::open(g)?;
    let from = Repository::open_at_with(&repo::location_of(g, &a.from_repository)?, &|shown| {
        repo_password::existing(
            a.from_password_file.as_ref(),
            shown,
            "--from-password-file",
            "OPSI_BACKUP_FROM_PASSWORD_FILE",
        )
    })?;
    to.ensure_distinct_from(&from)?;
    let chosen: Vec<SnapshotInfo> = if a.snapshots.is_empty() {
        from.snapshots()?
    } else {
        let mut chosen = Vec::new();
        for spec in &a.snapshots {
            let s = from.resolve(spec)?;
            if !chosen.iter().any(|c: &SnapshotInfo| c.id == s.id) {
                chosen.push(s);
            }
        }
        // Oldest first, as `snapshots` lists them: copies keep their order.
        chosen.sort_by(|x, y| x.recency().cmp(&y.recency()));
        chosen
    };
    let present = to.originals()?;
    let (mut copied, mut skipped) = (Vec::new(), Vec::new());
    let mut bytes = 0u64;
    for s in &chosen {
        let original = from.original_of(&s.id)?;
        if let Some(there) = present.get(&original) {
            output::summary(format!(
                "snapshot {} ({}, {}) is in the repository already as {}",
                human::short(&s.id),
                s.host,
                crate::logging::local_time(s.time),
                human::short(there)
            ));
            skipped.push(json::CopySkipped {
                from: json::Snapshot::from(s),
                existing: there.clone(),
            });
            continue;
        }
        if s.kind() == SnapshotKind::Opsiconfd && to.allow_kinds()? {
            logging::notice(format!(
                "repository format raised to version {} so that it can hold opsiconfd snapshots",
                crate::store::FORMAT_VERSION
            ));
        }
        let done = to.copy_from(&from, s)?;
        bytes += done.bytes_sent;
        output::summary(format!(
            "snapshot {} ({}, {}) copied as {} ({} new of {})",
            human::short(&s.id),
            s.host,
            crate::logging::local_time(s.time),
            human::short(&done.snapshot.id),
            human::bytes(done.bytes_sent),
            human::bytes(s.size)
        ));
        copied.push(json::Copied {
            from: json::Snapshot::from(s),
            to: json::Snapshot::from(&done.snapshot),
            chunks_sent: done.chunks_sent,
            bytes_sent: done.bytes_sent,
        });
    }
    output::summary(format!(
        "{} copied, {} there already; {} taken from {}",
        output::count(copied.len() as u64, "snapshot"),
        skipped.len(),
        human::bytes(bytes),
        a.from_repository.display()
    ));
    if a.json {
        json::print(&json::Copy {
            schema: json::schema("copy"),
            copied,
            skipped,
        })?;
    }
    Ok(0)
}
