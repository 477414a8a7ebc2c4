//! The password of encrypted opsiconfd backups, as for other secrets: never on the command
//! line (every user sees it there), but from a file (`--backup-password-file`,
//! `OPSI_BACKUP_BACKUP_PASSWORD_FILE`) or, on a terminal, a prompt without echo. (The names
//! without `backup-` are the repository's password: `repo_password.rs`.)

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::error::{Error, IoContext, Result};
use crate::opsiconfd::crypt::Password;

#[derive(Args, Debug, Clone, Default)]
pub struct PasswordArgs {
    /// For encrypted opsiconfd backups (`.aes`): the file holding the password (UTF-8 text;
    /// one trailing line break is not part of it). Without it, the password is asked for on a terminal.
    #[arg(
        long,
        value_name = "FILE",
        env = "OPSI_BACKUP_BACKUP_PASSWORD_FILE",
        hide_env_values = true
    )]
    pub backup_password_file: Option<PathBuf>,
}

impl PasswordArgs {
    /// The password, read when first needed; `what` says what it is for in the prompt.
    pub(super) fn read(&self, what: &str) -> Result<Password> {
        if let Some(path) = &self.backup_password_file {
            return from_file(path);
        }
        if !std::io::stdin().is_terminal() {
            return Err(Error::Invalid(format!(
                "{what} needs a password: give --backup-password-file FILE or \
                 OPSI_BACKUP_BACKUP_PASSWORD_FILE (there is no terminal to ask on)"
            )));
        }
        let pw = rpassword::prompt_password(format!("Password for {what}: "))
            .map_err(|e| Error::io("reading the password from the terminal", e))?;
        Password::from_text(pw.into_bytes())
    }
}

fn from_file(path: &Path) -> Result<Password> {
    let bytes = std::fs::read(path).path_ctx("reading the password file", path)?;
    Password::from_file_content(bytes)
}
