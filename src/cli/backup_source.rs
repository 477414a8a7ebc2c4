//! The backups `restore` reads (`restore::BackupSource`): an archive file or a repository
//! snapshot. Both are a stream of archive members, so both are verified the archive format's
//! way: a first pass checks every CONTENT file against CONTROL/checksums and gathers what
//! planning needs (`archive::scan`), later passes check every file the restore reads again
//! (`archive::rechecked`). Each pass shows a progress bar.
//!
//! A snapshot's members can be reached apart: when the restore needs part of it (`Scope`,
//! e.g. one product of the depot), both passes read the content of only that part and of
//! what checking it needs (CONTROL/, the planning files); the other members arrive as
//! metadata (`MemberSink::pass_over`), their chunks unread. Bulk data is guarded by the
//! BLAKE3 of every chunk read and read once, by the pass that stages it (`is_bulk`); CONTENT
//! files by their sha1 as well. An archive file is one stream: it is always read whole.

use std::path::PathBuf;

use crate::archive::archive_file;
use crate::archive::control::Checksums;
use crate::archive::rechecked::Rechecked;
use crate::archive::scan::{self, LargeContent, Scan};
use crate::cli::human;
use crate::cli::progress::{self, ProgressSink};
use crate::error::{Error, Result};
use crate::member::Member;
use crate::opsi::sysinfo::SysInfo;
use crate::restore::{BackupSource, Scope, Survey};
use crate::sink::MemberSink;
use crate::store::{Repository, SnapshotInfo};

/// Where a backup's members come from.
pub(super) enum Origin<'r> {
    Archive(PathBuf),
    Snapshot {
        repo: &'r Repository,
        info: SnapshotInfo,
    },
}

impl Origin<'_> {
    fn name(&self) -> String {
        match self {
            Origin::Archive(path) => path.display().to_string(),
            Origin::Snapshot { info, .. } => format!("snapshot {}", human::short(&info.id)),
        }
    }

    /// One pass over every member, reading the content of those `scope` needs (a snapshot)
    /// or all (an archive), with a progress bar named after the pass (`phase`); a snapshot
    /// knows its size, so its bar has a total (the bytes the pass reads) and an ETA. A
    /// snapshot's first pass is `survey`.
    fn replay(&self, phase: &str, scope: &Scope, sink: &mut dyn MemberSink) -> Result<()> {
        let want = |m: &Member| needed(scope, m);
        let bar = progress::bar_counting(phase, || match self {
            Origin::Archive(_) => None,
            Origin::Snapshot { info, .. } if *scope == Scope::Whole => Some(info.size),
            Origin::Snapshot { repo, info } => bytes_read(repo, info, &want),
        });
        let mut shown = ProgressSink::new(sink, bar.clone());
        let r = match self {
            Origin::Archive(path) => archive_file::replay(path, &mut shown).map(|_| ()),
            Origin::Snapshot { repo, info } if *scope == Scope::Whole => {
                repo.replay(&info.id, &mut shown)
            }
            Origin::Snapshot { repo, info } => repo.replay_selected(&info.id, &want, &mut shown),
        };
        bar.finish_and_clear();
        r
    }

    /// The first pass into `scan`. A snapshot's large CONTENT files (the MySQL dump) are read
    /// and summed on a thread of their own beside the other members (`scan::LargeContent`):
    /// each pass reads through its own index connection, and the two add up to one pass.
    /// Bulk data is left to the pass that stages it (`is_bulk`).
    fn survey(&self, scope: &Scope, scan: &mut Scan) -> Result<()> {
        let Origin::Snapshot { repo, info } = self else {
            return self.replay(SURVEY, scope, scan);
        };
        let want = |m: &Member| needed(scope, m) && !is_bulk(m);
        let bar = progress::bar_counting(SURVEY, || bytes_read(repo, info, &want));
        let mut large = LargeContent::default();
        let (main, side) = std::thread::scope(|s| {
            let (side_bar, large) = (bar.clone(), &mut large);
            let side = s.spawn(move || {
                let mut shown = ProgressSink::new(large, side_bar);
                let take = |m: &Member| want(m) && LargeContent::takes(m);
                repo.replay_selected(&info.id, &take, &mut shown)
            });
            let mut shown = ProgressSink::new(scan, bar.clone());
            let rest = |m: &Member| want(m) && !LargeContent::takes(m);
            let main = repo.replay_selected(&info.id, &rest, &mut shown);
            let side = side.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            (main, side)
        });
        bar.finish_and_clear();
        main?;
        side?;
        scan.absorb(large);
        Ok(())
    }
}

/// The bytes of the files of snapshot `info` that `want` accepts: a pass's progress total,
/// from the snapshot's metadata, read once more.
fn bytes_read(
    repo: &Repository,
    info: &SnapshotInfo,
    want: &dyn Fn(&Member) -> bool,
) -> Option<u64> {
    repo.members(&info.id).ok().map(|ms| {
        ms.iter()
            .filter(|m| m.is_file() && want(m))
            .map(|m| m.size)
            .sum()
    })
}

/// The first pass, which verifies before anything is planned.
const SURVEY: &str = "verify";

/// A file of bulk data (`DATA/`): its content is read once, by the pass that stages it. Every
/// chunk is checked against its id as it is read, and a target is swapped in only after the
/// whole pass went through, so a damaged chunk still changes nothing on the server; reading
/// the depot twice would double a restore of 100 GB. (CONTENT files are read in both passes:
/// planning needs them verified, and their sha1 sums are checked against CONTROL/checksums.)
fn is_bulk(m: &Member) -> bool {
    m.is_file() && crate::layout::DataPart::of(&m.path).is_some()
}

/// Whether a pass reads member `m`'s content: what `scope` restores and what checking the
/// backup needs (CONTROL/checksums, CONTROL/sysinfo, the planning files); members without
/// content cost nothing and are always given.
fn needed(scope: &Scope, m: &Member) -> bool {
    !m.is_file()
        || scan::is_control(&m.path)
        || scan::is_planning_file(&m.path)
        || scope.reads(&m.path)
}

/// A backup as restore reads it: verified in `survey`, checked again in every `replay`.
pub(super) struct Verified<'r> {
    origin: Origin<'r>,
    /// CONTROL/checksums, once `survey` found the backup intact.
    checksums: Option<Checksums>,
    /// What `survey` read, and so what `replay` reads.
    scope: Scope,
}

impl<'r> Verified<'r> {
    pub(super) fn new(origin: Origin<'r>) -> Verified<'r> {
        Verified {
            origin,
            checksums: None,
            scope: Scope::Whole,
        }
    }
}

impl BackupSource for Verified<'_> {
    fn name(&self) -> String {
        self.origin.name()
    }

    fn survey(&mut self, scope: &Scope) -> Result<Survey> {
        self.scope = scope.clone();
        let mut scan = Scan::default();
        self.origin.survey(&self.scope, &mut scan)?;
        scan.ensure_intact(&self.name())?;
        let mut sysinfo = SysInfo::new();
        for (k, v) in scan.sysinfo.iter().flatten() {
            sysinfo.set(k, v);
        }
        self.checksums = scan.checksums;
        Ok(Survey {
            present: scan.present,
            sysinfo,
            planning_files: scan.planning_files,
        })
    }

    fn replay(&mut self, sink: &mut dyn MemberSink) -> Result<()> {
        let Some(sums) = &self.checksums else {
            return Err(Error::Invalid(format!(
                "{} was not verified before it was replayed",
                self.name()
            )));
        };
        self.origin
            .replay("restore", &self.scope, &mut Rechecked::new(sums, sink))
    }
}
