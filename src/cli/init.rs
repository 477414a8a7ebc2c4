//! `init`: a new, empty repository (directory 0700, files 0600). A local repository is
//! plain unless `--encrypt` is given; one on object storage is encrypted unless
//! `--no-encryption` is given: a bucket is someone else's disk.

use clap::Args;

use crate::cli::{output, repo, repo_password, Global};
use crate::store::{Location, Repository};

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Encrypt the repository (the default for s3: repositories): its password is read from
    /// --password-file / OPSI_BACKUP_PASSWORD_FILE or asked twice on the terminal. Losing
    /// every password of a repository loses the repository.
    #[arg(long, conflicts_with = "no_encryption")]
    pub encrypt: bool,
    /// Create a repository on object storage without encryption.
    #[arg(long)]
    pub no_encryption: bool,
}

pub(super) fn init(g: &Global, a: InitArgs) -> anyhow::Result<i32> {
    let location = repo::location(g)?;
    let encrypt = match location {
        Location::Local(_) => a.encrypt,
        Location::S3 { .. } => !a.no_encryption,
    };
    let password = if encrypt {
        Some(repo_password::new(
            g.password_file.as_ref(),
            &location.to_string(),
            "--password-file",
            "OPSI_BACKUP_PASSWORD_FILE",
        )?)
    } else {
        None
    };
    Repository::init_at(&location, password.as_ref())?;
    output::summary(format!(
        "created {}repository at {location}",
        if encrypt { "encrypted " } else { "" }
    ));
    Ok(0)
}
