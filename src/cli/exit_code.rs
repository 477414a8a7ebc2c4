//! The process exit codes, in one place. The original's commands (create, list, verify,
//! restore) exit as the original opsi-backup does: 0, 1 for any error or an archive that does
//! not verify, 2 for wrong usage; with a repository, `--exit-codes detailed` (or
//! `OPSI_BACKUP_EXIT_CODES=detailed`) tells the causes apart. The repository's own commands
//! tell them apart by default (`--exit-codes compatible` gives 0, 1, 2), with restic's numbers
//! where restic has one. `health` follows the monitoring-plugin conventions instead
//! (`health::State`).

use clap::ValueEnum;

use crate::error::Error;

/// What ended the command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExitCode {
    Success = 0,
    /// Any error not named below.
    Failure = 1,
    /// Wrong usage: an unknown option, a missing argument (clap's own code).
    Usage = 2,
    /// Damage found: verify found problems, data read back did not match its hash, the
    /// index is damaged, or rebuild-index had to leave something out.
    Damage = 3,
    /// No repository where one was named (no directory, or no config.json in it).
    NoRepository = 10,
    /// The repository lock was not obtained within the lock wait.
    LockBusy = 11,
}

/// Which codes a command gives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ExitCodes {
    /// 0, 1 and 2, as the original opsi-backup.
    #[default]
    Compatible,
    /// Also 3 damage, 10 no repository, 11 lock not obtained.
    Detailed,
}

impl ExitCode {
    /// The code of a command that failed with `e`.
    pub(crate) fn of_error(e: &anyhow::Error) -> ExitCode {
        match e.downcast_ref::<Error>() {
            Some(Error::Corrupt(_) | Error::IndexDamaged { .. }) => ExitCode::Damage,
            Some(Error::NoRepository(_)) => ExitCode::NoRepository,
            Some(Error::LockBusy(_)) => ExitCode::LockBusy,
            Some(Error::Password(_)) => ExitCode::Usage,
            _ => ExitCode::Failure,
        }
    }

    /// The number the process exits with under `codes`.
    pub(crate) fn code(self, codes: ExitCodes) -> i32 {
        match (codes, self) {
            (ExitCodes::Detailed, c) => c as i32,
            (ExitCodes::Compatible, ExitCode::Success | ExitCode::Usage) => self as i32,
            (ExitCodes::Compatible, _) => ExitCode::Failure as i32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compatible_codes_are_the_originals() {
        let all = [
            ExitCode::Success,
            ExitCode::Failure,
            ExitCode::Usage,
            ExitCode::Damage,
            ExitCode::NoRepository,
            ExitCode::LockBusy,
        ];
        let compatible: Vec<i32> = all.iter().map(|c| c.code(ExitCodes::Compatible)).collect();
        assert_eq!(compatible, [0, 1, 2, 1, 1, 1]);
        let detailed: Vec<i32> = all.iter().map(|c| c.code(ExitCodes::Detailed)).collect();
        assert_eq!(detailed, [0, 1, 2, 3, 10, 11]);
        let e = anyhow::Error::from(Error::LockBusy("gave up".into()));
        assert_eq!(ExitCode::of_error(&e), ExitCode::LockBusy);
        assert_eq!(
            ExitCode::of_error(&anyhow::anyhow!("other")),
            ExitCode::Failure
        );
    }
}
