//! Test hooks: named points where a test makes the process crash (`crash_point`: `abort()`,
//! as `kill -9` would end it) or a restore fail (`fail_point`: an error). The crash points
//! and where they lie are listed in the spec, section "Crash points".
//!
//! Only builds with cargo feature `crash-points` have them: without it both functions are
//! empty and inlined, and the shipped binary reads no test variable from its environment.
//! A ground module: it imports nothing of the crate but `error`.

use crate::error::Result;

/// Environment variable naming the crash point at which the process aborts.
#[cfg(feature = "crash-points")]
pub(crate) const CRASH_ENV: &str = "OPSI_BACKUP_CRASH_AT";

/// Environment variable naming a point at which a restore fails with an error;
/// `restore-swap-<n>` fails before the n-th target (1-based) is swapped in, `restore-write-<n>`
/// the n-th file a restore's writer threads finish, before its metadata is set.
#[cfg(feature = "crash-points")]
pub(crate) const FAIL_ENV: &str = "OPSI_BACKUP_FAIL_AT";

/// Aborts the process (as kill -9 would end it) when `OPSI_BACKUP_CRASH_AT` equals `name`.
#[cfg(feature = "crash-points")]
pub(crate) fn crash_point(name: &str) {
    static AT: std::sync::OnceLock<Option<std::ffi::OsString>> = std::sync::OnceLock::new();
    if AT
        .get_or_init(|| std::env::var_os(CRASH_ENV))
        .as_deref()
        .is_some_and(|v| v == name)
    {
        std::process::abort();
    }
}

/// Without the feature: nothing.
#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub(crate) fn crash_point(_name: &str) {}

/// An injected error when `OPSI_BACKUP_FAIL_AT` equals `name`.
#[cfg(feature = "crash-points")]
pub(crate) fn fail_point(name: &str) -> Result<()> {
    if std::env::var_os(FAIL_ENV).is_some_and(|v| v == name) {
        return Err(crate::error::Error::Invalid(format!(
            "injected failure at {name}"
        )));
    }
    Ok(())
}

/// Without the feature: never fails.
#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub(crate) fn fail_point(_name: &str) -> Result<()> {
    Ok(())
}
