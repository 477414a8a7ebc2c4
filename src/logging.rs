//! opsi-style logging: levels 0 (nothing) to 9 (confidential), default 5 (notice). Messages go
//! to the log file at the chosen level and to stderr at warning level, or at the chosen level
//! with `-v`, as the original does. Log lines never contain credentials.
//! What the commands print for people (`ERROR: ...`, `WARNING: ...`, a repository command's
//! summary) goes to the log file as well (`error`, `labelled`, `record`), so a failed night
//! leaves its reason in the log and not only in a cron mail.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

pub(crate) const ERROR: u8 = 3;
pub(crate) const WARNING: u8 = 4;
pub(crate) const NOTICE: u8 = 5;
pub(crate) const INFO: u8 = 6;
pub(crate) const DEBUG: u8 = 7;

struct Logger {
    stderr_level: u8,
    file_level: u8,
    file: Option<File>,
}

static LOGGER: Mutex<Logger> = Mutex::new(Logger {
    stderr_level: WARNING,
    file_level: 0,
    file: None,
});

/// Sets up logging once at start-up. A log file that cannot be opened is skipped with a note
/// on stderr (the default one lives under /var/log/opsi, which a test machine may lack).
pub(crate) fn init(level: u8, verbose: bool, log_file: Option<&Path>, explicit_file: bool) {
    let mut l = LOGGER.lock().unwrap_or_else(|e| e.into_inner());
    l.stderr_level = if verbose { level } else { WARNING.min(level) };
    if let Some(path) = log_file {
        match open_log(path, explicit_file) {
            Ok(f) => {
                l.file = Some(f);
                l.file_level = level;
            }
            Err(e) if explicit_file => {
                eprintln!("WARNING: cannot open log file {}: {e}", path.display())
            }
            Err(_) => {}
        }
    }
}

/// Opens the log file for appending. The default one's directory (/var/log/opsi) comes with
/// opsi's packages; on a server set up without them it is made here (one level, readable by
/// its group only), so that the log is never silently lost. A file named on the command line
/// must have its directory.
fn open_log(path: &Path, explicit: bool) -> std::io::Result<File> {
    use std::os::unix::fs::DirBuilderExt;
    let open = || OpenOptions::new().create(true).append(true).open(path);
    match (open(), path.parent()) {
        (Err(e), Some(dir)) if !explicit && e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new().mode(0o750).create(dir)?;
            open()
        }
        (opened, _) => opened,
    }
}

fn level_name(level: u8) -> &'static str {
    match level {
        0..=1 => "essential",
        2 => "critical",
        3 => "error",
        4 => "warning",
        5 => "notice",
        6 => "info",
        _ => "debug",
    }
}

pub(crate) fn log(level: u8, msg: &str) {
    let mut l = LOGGER.lock().unwrap_or_else(|e| e.into_inner());
    if level <= l.stderr_level {
        eprintln!("[{}] {msg}", level_name(level));
    }
    to_file(&mut l, level, msg);
}

fn to_file(l: &mut Logger, level: u8, msg: &str) {
    if level <= l.file_level {
        let now = chrono::Local::now().format("%Y-%m-%d %H:%M:%S%.3f");
        if let Some(f) = l.file.as_mut() {
            let _ = writeln!(f, "[{level}] [{now}] {msg}");
        }
    }
}

/// `{label}: {msg}` on stderr whatever the level (the command's own report, as the original
/// prints its `ERROR:` lines), and `msg` in the log file at `level`.
pub(crate) fn labelled(level: u8, label: &str, msg: &str) {
    let mut l = LOGGER.lock().unwrap_or_else(|e| e.into_inner());
    eprintln!("{label}: {msg}");
    to_file(&mut l, level, &format!("{label}: {msg}"));
}

/// `ERROR: {msg}` on stderr and in the log file.
pub(crate) fn error(msg: impl AsRef<str>) {
    labelled(ERROR, "ERROR", msg.as_ref());
}

/// A line printed for people on stdout (a command's summary), kept in the log file too at
/// notice level.
pub(crate) fn record(msg: &str) {
    let mut l = LOGGER.lock().unwrap_or_else(|e| e.into_inner());
    to_file(&mut l, NOTICE, msg);
}

/// Unix seconds as local time for people (`2026-12-06 17:09:08`), as messages and listings
/// show it; the number itself when it is out of range.
pub(crate) fn local_time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| unix.to_string())
}

pub(crate) fn warning(msg: impl AsRef<str>) {
    log(WARNING, msg.as_ref());
}
pub(crate) fn notice(msg: impl AsRef<str>) {
    log(NOTICE, msg.as_ref());
}
pub(crate) fn info(msg: impl AsRef<str>) {
    log(INFO, msg.as_ref());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_default_log_directory_is_made_but_a_named_ones_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let named = dir.path().join("named/opsi-backup.log");
        assert!(open_log(&named, true).is_err());
        assert!(!named.parent().unwrap().exists());

        let default = dir.path().join("opsi/opsi-backup.log");
        open_log(&default, false).unwrap();
        assert!(default.is_file());
        let mode = std::fs::metadata(default.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o750);
        // Only one level: a missing grandparent is not made up.
        let deep = dir.path().join("a/b/opsi-backup.log");
        assert!(open_log(&deep, false).is_err());
        assert!(!dir.path().join("a").exists());
    }
}
