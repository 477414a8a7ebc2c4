//! The password of an encrypted repository: from `--password-file` /
//! `OPSI_BACKUP_PASSWORD_FILE` (for `copy`'s source `--from-password-file` /
//! `OPSI_BACKUP_FROM_PASSWORD_FILE`), or asked on the terminal without echo; never from the
//! command line. Asked only when the repository turns out to be encrypted.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::store::RepoPassword;

fn from_file(path: &Path) -> Result<RepoPassword> {
    let bytes = std::fs::read(path).path_ctx("reading the repository password file", path)?;
    RepoPassword::from_bytes(bytes)
}

fn no_terminal(shown: &str, option: &str, env: &str) -> Error {
    Error::Password(format!(
        "repository {shown} is encrypted: give its password with {option} FILE or {env} \
         (there is no terminal to ask on)"
    ))
}

/// The password of an existing repository: `file`, or a prompt. `option` and `env` name
/// where a file is given, for the message when neither works.
pub(super) fn existing(
    file: Option<&PathBuf>,
    shown: &str,
    option: &str,
    env: &str,
) -> Result<RepoPassword> {
    if let Some(path) = file {
        return from_file(path);
    }
    if !std::io::stdin().is_terminal() {
        return Err(no_terminal(shown, option, env));
    }
    let pw = rpassword::prompt_password(format!("Password for repository {shown}: "))
        .map_err(|e| Error::io("reading the password from the terminal", e))?;
    RepoPassword::from_bytes(pw.into_bytes())
}

/// A new password (`init --encrypt`, `key add`, `key passwd`): `file`, or typed twice.
pub(super) fn new(
    file: Option<&PathBuf>,
    shown: &str,
    option: &str,
    env: &str,
) -> Result<RepoPassword> {
    if let Some(path) = file {
        return from_file(path);
    }
    if !std::io::stdin().is_terminal() {
        return Err(no_terminal(shown, option, env));
    }
    let ask = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map_err(|e| Error::io("reading the password from the terminal", e))
    };
    let first = zeroize::Zeroizing::new(ask(&format!("New password for repository {shown}: "))?);
    let again = zeroize::Zeroizing::new(ask("The same password again: ")?);
    if *first != *again {
        return Err(Error::Password(
            "the two passwords differ; nothing changed".into(),
        ));
    }
    RepoPassword::from_bytes(first.as_bytes().to_vec())
}
