//! What the commands print on stdout for people. `-q/--quiet` silences it, so that a cron job
//! mails only failures (errors and warnings go to stderr either way); JSON asked for with
//! `--json` is printed regardless. A command's summary line is also kept in the log file.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::logging;

static QUIET: AtomicBool = AtomicBool::new(false);

pub(super) fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

pub(super) fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// The line that says what a command did: on stdout unless quiet, and in the log file.
pub(super) fn summary(line: impl AsRef<str>) {
    let line = line.as_ref();
    logging::record(line);
    if !quiet() {
        println!("{line}");
    }
}

/// `count(2, "snapshot")` is "2 snapshots", `count(1, "snapshot")` "1 snapshot".
pub(super) fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_singular_for_one() {
        assert_eq!(count(0, "snapshot"), "0 snapshots");
        assert_eq!(count(1, "snapshot"), "1 snapshot");
        assert_eq!(count(5, "pack"), "5 packs");
    }
}
