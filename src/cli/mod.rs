//! Command line: the original opsi-backup's commands and options (create, list, verify,
//! restore), plus the repository commands. One file per command, its handler named after it
//! (`create::create`); each parses nothing itself, calls the library and returns an exit code.
//! Shared by the commands: `repo` (opening the repository), `human` (ids and sizes for people),
//! `progress` (bars), `parent` (completing a parent snapshot for create and import).
//! Errors become one `ERROR: ...` line and exit 1 (usage errors exit 2), as the original does;
//! `exit_code` holds every code, and the detailed ones of the repository commands. `health`
//! is the monitoring check, with the plugin conventions' codes.

mod backup_source;
mod create;
mod diff;
mod exit_code;
mod export;
mod forget;
mod health;
mod human;
mod import;
mod init;
mod list;
mod parent;
mod progress;
mod prune;
mod rebuild_index;
mod repo;
mod restore;
mod snapshots;
mod stats;
mod verify;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::logging;
use crate::opsi::root::OpsiRoot;
use crate::settings::Settings;
use exit_code::{ExitCode, ExitCodes};

#[derive(Parser, Debug)]
#[command(
    name = "opsi-backup",
    about = "Creates, verifies and restores opsi backups; keeps nightly backups deduplicated in a repository",
    disable_version_flag = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Log to standard error at the chosen log level.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Show version info and exit.
    #[arg(short = 'V', long)]
    pub version: bool,
    /// Log level: 0=nothing, 1=essential, 2=critical, 3=error, 4=warning, 5=notice, 6=info, 7=debug, 8=debug2, 9=confidential.
    #[arg(short = 'l', long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(0..=9), global = true)]
    pub log_level: u8,
    /// Log to FILE (default /var/log/opsi/opsi-backup.log when that directory exists).
    #[arg(long, value_name = "FILE", global = true)]
    pub log_file: Option<PathBuf>,
    /// Resolve every opsi path (/etc/opsi, backend paths, dhcpd.conf) under DIR instead of /.
    #[arg(long, value_name = "DIR", env = "OPSI_BACKUP_ROOT", global = true)]
    pub root: Option<PathBuf>,
    /// The deduplicating repository to use (create stores a snapshot there).
    #[arg(
        long,
        value_name = "DIR",
        env = "OPSI_BACKUP_REPOSITORY",
        global = true
    )]
    pub repository: Option<PathBuf>,
    /// Wait at most SECONDS for the repository lock held by another opsi-backup (default
    /// 3600, or `lock_wait` in /etc/opsi/opsi-backup.toml; 0: do not wait).
    #[arg(long, value_name = "SECONDS", global = true)]
    pub lock_wait: Option<u64>,
    /// Exit codes of the commands with a repository: `compatible` (0, 1, 2 as the original)
    /// or `detailed` (also 3 damage found, 10 no repository, 11 lock not obtained).
    #[arg(
        long,
        value_name = "CODES",
        value_enum,
        default_value_t = ExitCodes::Compatible,
        env = "OPSI_BACKUP_EXIT_CODES",
        global = true
    )]
    pub exit_codes: ExitCodes,
    /// What /etc/opsi/opsi-backup.toml says (filled in after parsing).
    #[arg(skip)]
    pub settings: Settings,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new backup archive.
    Create(create::CreateArgs),
    /// List the data contained in backup archives.
    List(list::ListArgs),
    /// Verify the integrity of backup archives.
    Verify(verify::VerifyArgs),
    /// Restore data from a backup archive or a snapshot.
    Restore(restore::RestoreArgs),
    /// Create a new, empty repository.
    Init(init::InitArgs),
    /// List the snapshots in the repository.
    Snapshots(snapshots::SnapshotsArgs),
    /// Write a snapshot as a full opsi-backup archive.
    Export(export::ExportArgs),
    /// Store existing opsi-backup archives as snapshots.
    Import(import::ImportArgs),
    /// Rebuild the repository's index from its pack and snapshot files.
    RebuildIndex(rebuild_index::RebuildIndexArgs),
    /// Repository size, logical size, dedup ratio and bytes added per snapshot.
    Stats(stats::StatsArgs),
    /// What changed between two backups, by member, in opsi terms, and by MySQL table.
    Diff(diff::DiffArgs),
    /// Remove the snapshots a retention policy does not keep (or the named ones).
    Forget(forget::ForgetArgs),
    /// Free the space of data no snapshot needs any more.
    Prune(prune::PruneArgs),
    /// Monitoring check (Icinga, Nagios, check_mk): one status line; exit 0 OK, 1 WARNING,
    /// 2 CRITICAL, 3 UNKNOWN.
    Health(health::HealthArgs),
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = match (e.use_stderr(), invoked_as_health()) {
                (false, _) => ExitCode::Success as i32,
                // Plugin conventions: wrong arguments are UNKNOWN.
                (true, true) => health::State::Unknown as i32,
                (true, false) => ExitCode::Usage as i32,
            };
            let _ = e.print();
            return code;
        }
    };
    if cli.global.version {
        println!("{} [opsi-backup-rs]", env!("CARGO_PKG_VERSION"));
        return 0;
    }
    let default_log = PathBuf::from("/var/log/opsi/opsi-backup.log");
    let explicit = cli.global.log_file.is_some();
    let log_file = cli.global.log_file.clone().unwrap_or(default_log);
    logging::init(
        cli.global.log_level,
        cli.global.verbose,
        Some(&log_file),
        explicit,
    );
    let mut cli = cli;
    if let Err(e) = apply_settings(&mut cli.global) {
        if matches!(cli.command, Some(Command::Health(_))) {
            return health::unknown(&e.to_string());
        }
        eprintln!("ERROR: {e}");
        return ExitCode::Failure as i32;
    }
    let Some(command) = cli.command else {
        eprintln!("opsi-backup: a command is required (create, list, verify, restore); see --help");
        return ExitCode::Usage as i32;
    };
    let result = match command {
        Command::Create(a) => create::create(&cli.global, a),
        Command::List(a) => list::list(&cli.global, a),
        Command::Verify(a) => verify::verify(&cli.global, a),
        Command::Restore(a) => restore::restore(&cli.global, a),
        Command::Init(a) => init::init(&cli.global, a),
        Command::Snapshots(a) => snapshots::snapshots(&cli.global, a),
        Command::Export(a) => export::export(&cli.global, a),
        Command::Import(a) => import::import(&cli.global, a),
        Command::RebuildIndex(a) => rebuild_index::rebuild_index(&cli.global, a),
        Command::Stats(a) => stats::stats(&cli.global, a),
        Command::Diff(a) => diff::diff(&cli.global, a),
        Command::Forget(a) => forget::forget(&cli.global, a),
        Command::Prune(a) => prune::prune(&cli.global, a),
        Command::Health(a) => health::health(&cli.global, a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            logging::log(logging::DEBUG, &format!("{e:?}"));
            let e = name_repository(e, cli.global.repository.as_deref());
            eprintln!("ERROR: {e:#}");
            ExitCode::of_error(&e).code(cli.global.codes())
        }
    }
}

/// Whether the command line names the `health` command, for the code of a usage error
/// (clap has not said which command it is then).
fn invoked_as_health() -> bool {
    std::env::args_os().skip(1).any(|a| a == "health")
}

/// A damaged index found after opening (by a query, not by the check at open) does not know
/// the repository's directory; the options do, for the `rebuild-index` advice.
fn name_repository(e: anyhow::Error, repository: Option<&std::path::Path>) -> anyhow::Error {
    match (e.downcast_ref::<crate::Error>(), repository) {
        (
            Some(crate::Error::IndexDamaged {
                repository: None,
                detail,
            }),
            Some(r),
        ) => crate::Error::IndexDamaged {
            repository: Some(r.to_path_buf()),
            detail: detail.clone(),
        }
        .into(),
        _ => e,
    }
}

/// Fills what options and environment left open from /etc/opsi/opsi-backup.toml.
fn apply_settings(g: &mut Global) -> crate::Result<()> {
    let settings = Settings::load(&OpsiRoot::new(g.root()))?;
    if g.repository.is_none() {
        g.repository = settings.repository.clone();
    }
    if g.lock_wait.is_none() {
        g.lock_wait = settings.lock_wait;
    }
    if let Some(secs) = g.lock_wait {
        crate::store::set_lock_wait(std::time::Duration::from_secs(secs));
    }
    g.settings = settings;
    Ok(())
}

impl Global {
    pub fn root(&self) -> PathBuf {
        self.root.clone().unwrap_or_else(|| PathBuf::from("/"))
    }

    /// The exit codes in force: without a repository always the original's.
    fn codes(&self) -> ExitCodes {
        if self.repository.is_some() {
            self.exit_codes
        } else {
            ExitCodes::Compatible
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_index_found_late_names_the_repository_of_the_options() {
        let late = anyhow::Error::from(crate::Error::IndexDamaged {
            repository: None,
            detail: "database disk image is malformed".into(),
        });
        let shown = format!(
            "{:#}",
            name_repository(late, Some(std::path::Path::new("/srv/backup")))
        );
        assert!(
            shown.contains("opsi-backup --repository /srv/backup rebuild-index")
                && shown.contains("malformed"),
            "{shown}"
        );
        let other = anyhow::anyhow!("something else");
        let shown = format!(
            "{:#}",
            name_repository(other, Some(std::path::Path::new("/r")))
        );
        assert_eq!(shown, "something else");
    }
}
