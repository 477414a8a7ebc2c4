//! The backups `restore` reads (`restore::BackupSource`): an archive file or a repository
//! snapshot. Both are a stream of archive members, so both are verified the archive format's
//! way: a first pass checks every CONTENT file against CONTROL/checksums and gathers what
//! planning needs (`archive::scan`), later passes check every file the restore reads again
//! (`archive::rechecked`). Each pass shows a progress bar.

use std::path::PathBuf;

use crate::archive::archive_file;
use crate::archive::control::Checksums;
use crate::archive::rechecked::Rechecked;
use crate::archive::scan::Scan;
use crate::cli::human;
use crate::cli::progress::{self, ProgressSink};
use crate::error::{Error, Result};
use crate::opsi::sysinfo::SysInfo;
use crate::restore::{BackupSource, Survey};
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

    /// One pass over every member, with a progress bar named after the pass (`phase`); a
    /// snapshot knows its size, so its bar has a total and an ETA.
    fn replay(&self, phase: &str, sink: &mut dyn MemberSink) -> Result<()> {
        let total = match self {
            Origin::Archive(_) => None,
            Origin::Snapshot { info, .. } => Some(info.size),
        };
        let bar = progress::bar(phase, total);
        let mut shown = ProgressSink::new(sink, bar.clone());
        let r = match self {
            Origin::Archive(path) => archive_file::replay(path, &mut shown).map(|_| ()),
            Origin::Snapshot { repo, info } => repo.replay(&info.id, &mut shown),
        };
        bar.finish_and_clear();
        r
    }
}

/// A backup as restore reads it: verified in `survey`, checked again in every `replay`.
pub(super) struct Verified<'r> {
    origin: Origin<'r>,
    /// CONTROL/checksums, once `survey` found the backup intact.
    checksums: Option<Checksums>,
}

impl<'r> Verified<'r> {
    pub(super) fn new(origin: Origin<'r>) -> Verified<'r> {
        Verified {
            origin,
            checksums: None,
        }
    }
}

impl BackupSource for Verified<'_> {
    fn name(&self) -> String {
        self.origin.name()
    }

    fn survey(&mut self) -> Result<Survey> {
        let mut scan = Scan::default();
        self.origin.replay("verify", &mut scan)?;
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
            .replay("restore", &mut Rechecked::new(sums, sink))
    }
}
