//! Command line: the original opsi-backup's commands and options (create, list, verify,
//! restore), plus the repository commands. One file per command, its handler named after it
//! (`create::create`); each parses nothing itself, calls the library and returns an exit code.
//! Shared by the commands: `repo` (opening the repository), `human` (ids and sizes for people),
//! `progress` (bars), `parent` (completing a parent snapshot for create and import).
//! `manual`: completions and man pages generated from these definitions. `output` (what
//! goes to stdout, `-q`), `json` (the documents of `--json`, docs/json.md). Errors become one `ERROR: ...` line on stderr and in
//! the log file, and exit 1 (usage errors exit 2), as the original does; `exit_code` holds
//! every code, and the detailed ones of the repository commands. `health` is the monitoring
//! check, with the plugin conventions' codes.

/// `println!` for people: nothing with `-q` (see `output`).
macro_rules! say {
    ($($arg:tt)*) => {
        if !$crate::cli::output::quiet() {
            println!($($arg)*);
        }
    };
}

mod backup_source;
mod copy;
mod create;
mod diff;
mod exit_code;
mod export;
mod forget;
mod health;
mod human;
mod import;
mod init;
mod json;
mod key;
mod list;
mod manual;
mod opsiconfd;
mod output;
mod parent;
mod password;
mod progress;
mod prune;
mod rebuild_index;
mod repo;
mod repo_password;
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
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Log to standard error at the chosen log level.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Print nothing on standard output (a report asked for with --json still is); errors
    /// and warnings still go to standard error and the log file. For cron jobs.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Show version info and exit.
    #[arg(short = 'V', long)]
    pub version: bool,
    /// Log level: 0=nothing, 1=essential, 2=critical, 3=error, 4=warning, 5=notice, 6=info, 7=debug, 8=debug2, 9=confidential.
    #[arg(short = 'l', long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(0..=9), global = true)]
    pub log_level: u8,
    /// Log to FILE (default /var/log/opsi/opsi-backup.log; /var/log/opsi is made when missing).
    #[arg(long, value_name = "FILE", global = true)]
    pub log_file: Option<PathBuf>,
    /// Resolve every opsi path (/etc/opsi, backend paths, dhcpd.conf) under DIR instead of /.
    #[arg(
        long,
        value_name = "DIR",
        env = "OPSI_BACKUP_ROOT",
        hide_env_values = true,
        global = true
    )]
    pub root: Option<PathBuf>,
    /// The deduplicating repository to use (create stores a snapshot there): a directory, or
    /// s3:https://host[:port]/bucket[/prefix] on S3-compatible object storage (credentials
    /// from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or [s3] in the settings file).
    /// Default: `repository` in /etc/opsi/opsi-backup.toml.
    #[arg(
        short = 'r',
        long,
        value_name = "DIR",
        env = "OPSI_BACKUP_REPOSITORY",
        hide_env_values = true,
        global = true
    )]
    pub repository: Option<PathBuf>,
    /// The file holding the password of an encrypted repository (UTF-8 text; one trailing
    /// line break is not part of it). Without it, the password is asked on a terminal; it is
    /// never taken from the command line. Only asked when the repository is encrypted.
    #[arg(
        long,
        value_name = "FILE",
        env = "OPSI_BACKUP_PASSWORD_FILE",
        hide_env_values = true,
        global = true
    )]
    pub password_file: Option<PathBuf>,
    /// Wait at most SECONDS for the repository lock held by another opsi-backup (default
    /// 3600, or `lock_wait` in /etc/opsi/opsi-backup.toml; 0: do not wait).
    #[arg(long, value_name = "SECONDS", global = true)]
    pub lock_wait: Option<u64>,
    /// Exit codes: `compatible` (0, 1, 2 as the original) or `detailed` (also 3 damage found,
    /// 10 no repository, 11 lock not obtained). Default: detailed for the repository
    /// commands, compatible for create, list, verify and restore.
    #[arg(
        long,
        value_name = "CODES",
        value_enum,
        env = "OPSI_BACKUP_EXIT_CODES",
        hide_env_values = true,
        global = true
    )]
    pub exit_codes: Option<ExitCodes>,
    /// What /etc/opsi/opsi-backup.toml says (filled in after parsing).
    #[arg(skip)]
    pub settings: Settings,
    /// The exit codes in force, resolved for the command before it runs.
    #[arg(skip)]
    pub resolved_codes: ExitCodes,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new backup archive; with a repository, a snapshot in it instead (and the
    /// archive too when DEST is given).
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
    /// Copy snapshots from another repository, taking only the data this one lacks.
    Copy(copy::CopyArgs),
    /// The passwords of an encrypted repository: list, add, passwd, remove.
    Key(key::KeyArgs),
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
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(manual::CompletionsArgs),
    /// Write the man pages into DIR (a packaging step).
    #[command(hide = true)]
    Man(manual::ManArgs),
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
    // The manual depends on the definitions alone: no log file, no settings to read.
    let cli = match cli.command {
        Some(Command::Completions(a)) => {
            return finish(manual::completions(a), None, ExitCodes::Compatible)
        }
        Some(Command::Man(a)) => return finish(manual::man(a), None, ExitCodes::Compatible),
        _ => cli,
    };
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
    let Some(command) = cli.command else {
        eprintln!("opsi-backup: a command is required (create, list, verify, restore); see --help");
        return ExitCode::Usage as i32;
    };
    // With --json, stdout holds the one document and nothing for people.
    output::set_quiet(cli.global.quiet || command.json());
    if let Err(e) = apply_settings(&mut cli.global) {
        if matches!(command, Command::Health(_)) {
            return health::unknown(&e.to_string());
        }
        if needs_settings(&cli.global, &command) {
            logging::error(format!(
                "{e}; fix {} or move it away (options and environment variables can replace it)",
                crate::settings::SETTINGS_FILE
            ));
            return ExitCode::Failure as i32;
        }
        logging::warning(format!(
            "{e}; ignored, as {} does not need it",
            command.name()
        ));
    }
    let codes = cli.global.codes_for(&command);
    cli.global.resolved_codes = codes;
    let result = match command {
        Command::Create(a) => create::create(&cli.global, a),
        Command::List(a) => list::list(&cli.global, a),
        Command::Verify(a) => verify::verify(&cli.global, a),
        Command::Restore(a) => restore::restore(&cli.global, a),
        Command::Init(a) => init::init(&cli.global, a),
        Command::Snapshots(a) => snapshots::snapshots(&cli.global, a),
        Command::Export(a) => export::export(&cli.global, a),
        Command::Import(a) => import::import(&cli.global, a),
        Command::Copy(a) => copy::copy(&cli.global, a),
        Command::Key(a) => key::key(&cli.global, a),
        Command::RebuildIndex(a) => rebuild_index::rebuild_index(&cli.global, a),
        Command::Stats(a) => stats::stats(&cli.global, a),
        Command::Diff(a) => diff::diff(&cli.global, a),
        Command::Forget(a) => forget::forget(&cli.global, a),
        Command::Prune(a) => prune::prune(&cli.global, a),
        Command::Completions(a) => manual::completions(a),
        Command::Man(a) => manual::man(a),
        Command::Health(a) => health::health(&cli.global, a),
    };
    finish(result, cli.global.repository.as_deref(), codes)
}

/// The exit code of a command's result; an error becomes one `ERROR: ...` line.
fn finish(
    result: anyhow::Result<i32>,
    repository: Option<&std::path::Path>,
    codes: ExitCodes,
) -> i32 {
    match result {
        Ok(code) => code,
        Err(e) => {
            logging::log(logging::DEBUG, &format!("{e:?}"));
            let e = name_repository(e, repository);
            logging::error(format!("{e:#}"));
            ExitCode::of_error(&e).code(codes)
        }
    }
}

/// Whether the command line's command is `health`, for the code of a usage error: clap's
/// own reading of the line, errors ignored (`list health --bad` is `list`'s usage error);
/// where even that finds no command (`--bad health`), the word `health` anywhere.
fn invoked_as_health() -> bool {
    use clap::CommandFactory;
    let read = Cli::command().ignore_errors(true).try_get_matches();
    match read.as_ref().ok().and_then(|m| m.subcommand_name()) {
        Some(name) => name == "health",
        None => std::env::args_os().skip(1).any(|a| a == "health"),
    }
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

/// Whether `command` may depend on /etc/opsi/opsi-backup.toml: it does unless it only reads
/// archive files (list, verify, diff, restore of existing files) with the repository given
/// or not needed. A broken file must not turn a nightly `create` into an archive in the current
/// directory, but it need not stop anyone from reading an archive.
fn needs_settings(g: &Global, command: &Command) -> bool {
    fn files_only<P: AsRef<std::path::Path>>(files: &[P]) -> bool {
        !files.is_empty() && files.iter().all(|f| f.as_ref().is_file())
    }
    match command {
        Command::List(a) => !files_only(&a.files),
        Command::Verify(a) => !files_only(&a.files),
        Command::Diff(a) => !files_only(&[&a.a, &a.b]),
        Command::Restore(a) => !files_only(&[&a.file]),
        Command::Init(_) => g.repository.is_none(),
        _ => true,
    }
}

impl Command {
    /// Whether the report is asked for as JSON.
    fn json(&self) -> bool {
        match self {
            Command::Create(a) => a.json,
            Command::List(a) => a.json,
            Command::Verify(a) => a.json,
            Command::Restore(a) => a.json,
            Command::Snapshots(a) => a.json,
            Command::Export(a) => a.json,
            Command::Import(a) => a.json,
            Command::Copy(a) => a.json,
            Command::Stats(a) => a.json,
            Command::Diff(a) => a.json,
            Command::Forget(a) => a.json,
            Command::Prune(a) => a.json,
            Command::Init(_)
            | Command::Key(_)
            | Command::RebuildIndex(_)
            | Command::Completions(_)
            | Command::Man(_)
            | Command::Health(_) => false,
        }
    }

    /// Whether the command is one of the original opsi-backup's.
    fn is_original(&self) -> bool {
        matches!(
            self,
            Command::Create(_) | Command::List(_) | Command::Verify(_) | Command::Restore(_)
        )
    }

    /// The command's name as typed (`rebuild-index`).
    fn name(&self) -> &'static str {
        match self {
            Command::Create(_) => "create",
            Command::List(_) => "list",
            Command::Verify(_) => "verify",
            Command::Restore(_) => "restore",
            Command::Init(_) => "init",
            Command::Snapshots(_) => "snapshots",
            Command::Export(_) => "export",
            Command::Import(_) => "import",
            Command::Copy(_) => "copy",
            Command::Key(_) => "key",
            Command::RebuildIndex(_) => "rebuild-index",
            Command::Stats(_) => "stats",
            Command::Diff(_) => "diff",
            Command::Forget(_) => "forget",
            Command::Prune(_) => "prune",
            Command::Completions(_) => "completions",
            Command::Man(_) => "man",
            Command::Health(_) => "health",
        }
    }
}

/// Fills what options and environment left open from /etc/opsi/opsi-backup.toml.
/// When the file cannot be used, what options and environment say still applies.
fn apply_settings(g: &mut Global) -> crate::Result<()> {
    let (settings, loaded) = match Settings::load(&OpsiRoot::new(g.root())) {
        Ok(s) => (s, Ok(())),
        Err(e) => (Settings::default(), Err(e)),
    };
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
    loaded
}

impl Global {
    pub fn root(&self) -> PathBuf {
        self.root.clone().unwrap_or_else(|| PathBuf::from("/"))
    }

    /// The exit codes in force for the running command (see `codes_for`).
    fn codes(&self) -> ExitCodes {
        self.resolved_codes
    }

    /// The exit codes of `command`. The original's commands (create, list, verify, restore)
    /// keep its 0, 1, 2 unless detailed codes are asked for with a repository: scripts
    /// written for the original keep working. The repository's own commands have no
    /// original to follow, so they tell the causes apart unless asked not to.
    fn codes_for(&self, command: &Command) -> ExitCodes {
        if command.is_original() {
            match (self.repository.is_some(), self.exit_codes) {
                (true, Some(codes)) => codes,
                _ => ExitCodes::Compatible,
            }
        } else {
            self.exit_codes.unwrap_or(ExitCodes::Detailed)
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
