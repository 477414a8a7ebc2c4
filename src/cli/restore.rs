//! `restore FILE`: verified, confirmed, staged, then swapped in (see `restore::run`). The
//! confirmation is asked here, on the terminal.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use clap::Args;

use crate::cli::backup_source::{Origin, Verified};
use crate::cli::{json, repo, Global};
use crate::error::{Error, IoContext, Result};
use crate::layout::DataPart;
use crate::opsi::root::OpsiRoot;
use crate::rename::validate_server_id;
use crate::restore::{self, Request, Restored};

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup archive, or with a repository a snapshot (`latest` or an id prefix).
    #[arg(value_name = "FILE|SNAPSHOT")]
    pub file: PathBuf,
    /// Backends to restore: file, mysql, dhcp, auto (default: those in dispatch.conf) or all. Repeatable.
    /// From a snapshot also the server's bulk data: depot, workbench, repository, tftp.
    #[arg(long = "backends", value_name = "BACKEND")]
    pub backends: Vec<String>,
    /// With --backends depot: restore only this product's directory of the depot.
    #[arg(long, value_name = "ID")]
    pub product: Option<String>,
    /// Restore the one bulk data part named (depot, ...) into DIR instead of its live place.
    #[arg(long, value_name = "DIR")]
    pub target: Option<PathBuf>,
    /// Restore the opsi configuration (/etc/opsi).
    #[arg(long)]
    pub configuration: bool,
    /// Skip the system check and restore anyway. Use with caution!
    #[arg(short, long)]
    pub force: bool,
    /// Rename the config server to this id after restoring.
    #[arg(long, value_name = "SERVER_ID")]
    pub new_server_id: Option<String>,
    /// Print what was restored as JSON (docs/json.md).
    #[arg(long)]
    pub json: bool,
}

pub(super) fn request(a: &RestoreArgs) -> anyhow::Result<Request> {
    // An invalid id is an error before anything is read or restored.
    let new_server_id = a
        .new_server_id
        .as_deref()
        .map(validate_server_id)
        .transpose()?;
    let product = a.product.as_deref().map(product_id).transpose()?;
    // Relative to where the command runs, as a path on the command line is; then, like every
    // target, checked to lie under the root and off the system directories.
    let target = match &a.target {
        Some(t) if t.is_relative() => Some(
            std::env::current_dir()
                .ctx("reading the current directory")?
                .join(t),
        ),
        t => t.clone(),
    };
    Ok(Request {
        backends: a.backends.clone(),
        configuration: a.configuration,
        force: a.force,
        new_server_id,
        product,
        target,
    })
}

/// A product id names one directory of the depot: one plain path component.
fn product_id(id: &str) -> Result<String> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && !id.contains(['/', '\\', '\0'])
        && id.len() <= 255;
    if ok {
        Ok(id.to_string())
    } else {
        Err(Error::Invalid(format!(
            "--product '{id}' is not a product id (one directory of the depot)"
        )))
    }
}

/// The bulk data parts named in `--backends`.
fn data_named(a: &RestoreArgs) -> Vec<&str> {
    a.backends
        .iter()
        .filter(|b| DataPart::parse(b).is_some())
        .map(String::as_str)
        .collect()
}

pub(super) fn restore(g: &Global, a: RestoreArgs) -> anyhow::Result<i32> {
    let req = request(&a)?;
    let root = OpsiRoot::new(g.root());
    let (archive, snapshot, restored) = if repo::is_archive(g, &a.file) {
        repo::ensure_not_snapshot(g, &a.file)?;
        let data = data_named(&a);
        if !data.is_empty() {
            return Err(Error::Invalid(format!(
                "{} is an archive file: archives never hold {} (a repository snapshot does; \
                 `export` writes it as separate tar files beside the archive)",
                a.file.display(),
                data.join(", ")
            ))
            .into());
        }
        let mut src = Verified::new(Origin::Archive(a.file.clone()));
        let restored = restore::restore(&root, &mut src, &req, &ask)?;
        (Some(a.file.display().to_string()), None, restored)
    } else {
        let r = repo::open(g)?;
        let info = r.resolve(&a.file.to_string_lossy())?;
        super::opsiconfd::refuse(&info, "opsi-backup restores opsi-backup archives only")?;
        let snapshot = json::Snapshot::from(&info);
        let mut src = Verified::new(Origin::Snapshot { repo: &r, info });
        let restored = restore::restore(&root, &mut src, &req, &ask)?;
        (None, Some(snapshot), restored)
    };
    if a.json {
        json::print(&json::Restore {
            schema: json::schema("restore"),
            archive,
            snapshot,
            restored: restored.into_iter().map(part).collect(),
            new_server_id: req.new_server_id.clone(),
        })?;
    }
    Ok(0)
}

fn part(r: Restored) -> json::RestoredPart {
    json::RestoredPart {
        prefix: r.prefix,
        destination: r.what,
    }
}

/// Asks on the terminal whether to go on despite `warning`. Without a terminal the answer is
/// no (use --force).
fn ask(warning: &str) -> Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        // The error is shown as `ERROR: ...`: the warning's own prefix would double it.
        let warning = warning.strip_prefix("WARNING: ").unwrap_or(warning);
        return Err(Error::Aborted(format!(
            "{warning}Not restoring: no terminal to confirm on. Use --force to restore anyway."
        )));
    }
    eprint!("{warning}Do you wish to continue? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .ctx("reading the answer")?;
    if matches!(line.trim(), "y" | "Y") {
        Ok(())
    } else {
        Err(Error::Aborted("Restore aborted.".into()))
    }
}
