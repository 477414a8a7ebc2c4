//! `key list|add|passwd|remove`: the passwords of an encrypted repository. Each password is
//! a key file sealing the same master key; the repository is opened with one of them
//! (`--password-file` or a prompt), a new one is read from `--new-password-file` /
//! `OPSI_BACKUP_NEW_PASSWORD_FILE` or typed twice.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::cli::{output, repo, repo_password, Global};

#[derive(Args, Debug)]
pub struct KeyArgs {
    #[command(subcommand)]
    pub action: KeyAction,
    /// The file holding the new password of `add` and `passwd` (otherwise typed twice on
    /// the terminal).
    #[arg(
        long,
        value_name = "FILE",
        env = "OPSI_BACKUP_NEW_PASSWORD_FILE",
        hide_env_values = true,
        global = true
    )]
    pub new_password_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum KeyAction {
    /// List the key files (one per password); `*` marks the one that opened the repository.
    List,
    /// Add a password.
    Add,
    /// Change the password that opened the repository (a new key file replaces its own).
    Passwd,
    /// Remove a password's key file (not the one in use, not the last one).
    Remove {
        /// The key's id (a unique prefix will do), as `key list` shows it.
        #[arg(value_name = "ID")]
        id: String,
    },
}

pub(super) fn key(g: &Global, a: KeyArgs) -> anyhow::Result<i32> {
    let r = repo::open(g)?;
    let new_password = || {
        repo_password::new(
            a.new_password_file.as_ref(),
            r.shown(),
            "--new-password-file",
            "OPSI_BACKUP_NEW_PASSWORD_FILE",
        )
    };
    match &a.action {
        KeyAction::List => {
            for k in r.keys()? {
                let mark = if k.in_use { "*" } else { " " };
                match &k.damaged {
                    Some(why) => say!("{mark} {}  DAMAGED: {why}", k.id),
                    None => say!(
                        "{mark} {}  {}  {}",
                        k.id,
                        crate::logging::local_time(k.created),
                        k.host
                    ),
                }
            }
        }
        KeyAction::Add => {
            // Opened first: the password in use is checked before a new one is asked.
            r.keys()?;
            let id = r.add_key(&new_password()?)?;
            output::summary(format!("added key {id}"));
        }
        KeyAction::Passwd => {
            r.keys()?;
            let (new, old) = r.change_password(&new_password()?)?;
            output::summary(format!("password changed: key {new} replaces key {old}"));
        }
        KeyAction::Remove { id } => {
            let id = r.remove_key(id)?;
            output::summary(format!("removed key {id}"));
        }
    }
    Ok(0)
}
