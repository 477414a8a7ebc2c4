//! The manual generated from the clap definitions, so that it never drifts from the code:
//! `completions SHELL` prints a completion script, the hidden `man DIR` writes one man page
//! per command plus the main one (the Debian package's build step, contrib/deb/build.sh).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to print the completion script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Directory the man pages are written to (created if missing).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// Prints the completion script for `a.shell` on stdout.
pub(crate) fn completions(a: CompletionsArgs) -> anyhow::Result<i32> {
    let mut out = std::io::stdout().lock();
    clap_complete::generate(a.shell, &mut Cli::command(), "opsi-backup", &mut out);
    out.flush()?;
    Ok(0)
}

/// Writes opsi-backup.1 and opsi-backup-COMMAND.1 for every visible command into `a.dir`.
pub(crate) fn man(a: ManArgs) -> anyhow::Result<i32> {
    std::fs::create_dir_all(&a.dir)
        .with_context(|| format!("cannot create {}", a.dir.display()))?;
    // The version goes into each page's footer; the flag itself stays `-V` as the original's.
    let cmd = Cli::command().version(env!("CARGO_PKG_VERSION"));
    clap_mangen::generate_to(cmd, &a.dir)
        .with_context(|| format!("cannot write the man pages into {}", a.dir.display()))?;
    Ok(0)
}
