//! `restore FILE`: verified, confirmed, staged, then swapped in (see `restore::run`).

use std::path::PathBuf;

use clap::Args;

use crate::cli::progress::{self, ProgressSink};
use crate::cli::{repo, Global};
use crate::opsi::root::OpsiRoot;
use crate::rename::validate_server_id;
use crate::restore::BackupSource;
use crate::restore::{self, run::ArchiveSource, Request};
use crate::sink::MemberSink;

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup archive, or with a repository a snapshot (`latest` or an id prefix).
    #[arg(value_name = "FILE|SNAPSHOT")]
    pub file: PathBuf,
    /// Backends to restore: file, mysql, dhcp, auto (default: those in dispatch.conf) or all. Repeatable.
    #[arg(long = "backends", value_name = "BACKEND")]
    pub backends: Vec<String>,
    /// Restore the opsi configuration (/etc/opsi).
    #[arg(long)]
    pub configuration: bool,
    /// Skip the system check and restore anyway. Use with caution!
    #[arg(short, long)]
    pub force: bool,
    /// Rename the config server to this id after restoring.
    #[arg(long, value_name = "SERVER_ID")]
    pub new_server_id: Option<String>,
}

pub fn request(a: &RestoreArgs) -> anyhow::Result<Request> {
    // An invalid id is an error before anything is read or restored.
    let new_server_id = a
        .new_server_id
        .as_deref()
        .map(validate_server_id)
        .transpose()?;
    Ok(Request {
        backends: a.backends.clone(),
        configuration: a.configuration,
        force: a.force,
        new_server_id,
    })
}

pub fn restore(g: &Global, a: RestoreArgs) -> anyhow::Result<i32> {
    let req = request(&a)?;
    let root = OpsiRoot::new(g.root());
    if repo::is_archive(g, &a.file) {
        restore::restore(&root, &WithProgress(&ArchiveSource(a.file.clone())), &req)?;
    } else {
        let r = repo::open(g)?;
        let info = r.resolve(&a.file.to_string_lossy())?;
        restore::restore(
            &root,
            &WithProgress(&repo::SnapshotSource { repo: &r, info }),
            &req,
        )?;
    }
    Ok(0)
}

/// Shows a bar for each pass over the backup (verification, then the restore itself).
struct WithProgress<'a>(&'a dyn BackupSource);

impl BackupSource for WithProgress<'_> {
    fn name(&self) -> String {
        self.0.name()
    }
    fn replay(&self, sink: &mut dyn MemberSink) -> crate::Result<()> {
        let bar = progress::bar("restore", None);
        let r = self.0.replay(&mut ProgressSink::new(sink, bar.clone()));
        bar.finish_and_clear();
        r
    }
}
