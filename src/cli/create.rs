//! `create [DEST]`: a new backup archive, as the original writes it. `create --backends
//! opsiconfd` (opsi 4.3, with a repository) runs the server's own `opsiconfd backup` instead
//! and stores its file as an opsiconfd snapshot (`cli/opsiconfd.rs`).

use std::path::PathBuf;

use clap::Args;

use crate::archive::archive_file::ArchiveFileWriter;
use crate::archive::compression::Compression;
use crate::archive::control::ControlWriter;
use crate::archive::naming;
use crate::cli::progress::{self, ProgressSink};
use crate::cli::{export, human, json, opsiconfd, output, parent, repo, Global};
use crate::error::Error;
use crate::layout::DataPart;
use crate::logging;
use crate::mysql::{Consistency, DumpOptions};
use crate::opsi::backends::load_backends;
use crate::opsi::data_dirs;
use crate::opsi::root::OpsiRoot;
use crate::opsi::sysinfo::SysInfo;
use crate::settings::SETTINGS_FILE;
use crate::source::exclude::Exclude;
use crate::source::plan::Plan;
use crate::store::SnapshotMeta;

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The archive file, or an existing directory to create it in (default: the current directory).
    #[arg(value_name = "DEST")]
    pub destination: Option<PathBuf>,
    /// Backends to back up: file, mysql, dhcp, auto (those in dispatch.conf) or all. Repeatable.
    /// With a repository also the server's bulk data: depot, workbench, repository (the .opsi
    /// packages), tftp (never implied by auto or all). Default: `backends` of `[create]` in
    /// /etc/opsi/opsi-backup.toml, else auto.
    /// `opsiconfd` (alone, with a repository): run the server's `opsiconfd backup` and store
    /// its file.
    #[arg(long = "backends", value_name = "BACKEND")]
    pub backends: Vec<String>,
    /// With `--backends opsiconfd`: an argument passed on to `opsiconfd backup` (e.g.
    /// `--opsiconfd-arg=--no-maintenance`). Repeatable.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub opsiconfd_arg: Vec<String>,
    /// Do not back up the opsi configuration (/etc/opsi).
    #[arg(long)]
    pub no_configuration: bool,
    /// Compression of the archive (a bare -c means none, as in the original).
    #[arg(short = 'c', long, default_value = "bz2", num_args = 0..=1, default_missing_value = "none", value_parser = ["gz", "bz2", "none"])]
    pub compression: String,
    /// Make mysql flush its logs before the dump (needs the RELOAD privilege).
    #[arg(long)]
    pub flush_logs: bool,
    /// Read every file again instead of trusting size, mtime, inode and ctime against the
    /// parent snapshot (repository only).
    #[arg(long)]
    pub full: bool,
    /// With a repository and DEST: compress the archive afresh instead of reusing compressed
    /// segments of earlier archives from the repository's export cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Dump mysql in one consistent transaction instead of locking the tables (InnoDB; opsi keeps working meanwhile).
    #[arg(long)]
    pub single_transaction: bool,
    /// Print what was saved and written as JSON (docs/json.md).
    #[arg(long)]
    pub json: bool,
}

pub(super) fn dump_options(a: &CreateArgs) -> DumpOptions {
    DumpOptions {
        flush_logs: a.flush_logs,
        consistency: if a.single_transaction {
            Consistency::SingleTransaction
        } else {
            Consistency::LockTables
        },
    }
}

/// The backends asked for: the options', else the settings' `[create] backends`.
fn requested(g: &Global, a: &CreateArgs) -> Vec<String> {
    if a.backends.is_empty() {
        g.settings.create.backends.clone()
    } else {
        a.backends.clone()
    }
}

/// The bulk data parts named in `backends` (depot, workbench, repository, tftp).
fn data_parts(backends: &[String]) -> Vec<DataPart> {
    backends.iter().filter_map(|b| DataPart::parse(b)).collect()
}

/// Reads the server's configuration and decides what goes into the backup.
pub(super) fn plan(
    root: &OpsiRoot,
    sysinfo: &SysInfo,
    a: &CreateArgs,
    g: &Global,
) -> anyhow::Result<Plan> {
    if root.is_live() && !nix::unistd::geteuid().is_root() {
        return Err(
            Error::Invalid("Only users with root access can create a backup.".into()).into(),
        );
    }
    let set = load_backends(root, sysinfo.get("fqdn").unwrap_or_default())?;
    for w in &set.warnings {
        logging::warning(w);
    }
    let sel = set.select(&requested(g, a))?;
    for w in &sel.warnings {
        logging::warning(w);
    }
    let mut plan = Plan::new(root, &sel, !a.no_configuration)?;
    let fqdn = sysinfo.get("fqdn").unwrap_or_default();
    let mut dirs = Vec::new();
    for dir in data_dirs::locate(root, &set, fqdn, &sel.data)? {
        let exclude = Exclude::new(&g.settings.exclude.for_part(dir.part.name()))?;
        dirs.push((dir, exclude));
    }
    plan.add_data(dirs);
    Ok(plan)
}

pub(super) fn create(g: &Global, a: CreateArgs) -> anyhow::Result<i32> {
    if a.backends.iter().any(|b| b == "opsiconfd") {
        return create_opsiconfd(g, &a);
    }
    let data = data_parts(&requested(g, &a));
    if !data.is_empty() && g.repository.is_none() {
        let names: Vec<&str> = data.iter().map(|p| p.name()).collect();
        return Err(Error::Invalid(format!(
            "--backends {} needs a repository (--repository DIR or `repository` in {}): an \
             opsi-backup archive never holds the server's bulk data",
            names.join(", "),
            SETTINGS_FILE
        ))
        .into());
    }
    let root = OpsiRoot::new(g.root());
    let sysinfo = SysInfo::gather(&root);
    let plan = plan(&root, &sysinfo, &a, g)?;
    let compression = Compression::parse(&a.compression)?;
    if g.repository.is_some() {
        return create_snapshot(g, &a, &plan, &sysinfo, compression);
    }
    let name = naming::archive_name(
        sysinfo.get("hostname"),
        sysinfo.get("opsiVersion"),
        compression,
        chrono::Local::now(),
    );
    let dest = naming::destination(a.destination.as_deref(), &name);
    export::warn_name_mismatch(&dest, compression);
    logging::notice(format!("Creating backup archive {}", dest.display()));
    let writer = ArchiveFileWriter::create(&dest, compression)?;
    let spool_dir = writer.dir().to_path_buf();
    let mut control = ControlWriter::new(writer);
    let bar = progress::bar_counting("create", || plan.expected_bytes(None));
    plan.run(
        &dump_options(&a),
        None,
        &mut ProgressSink::new(&mut control, bar.clone()),
        Some(&spool_dir),
    )?;
    bar.finish_and_clear();
    let writer = control.finish(&sysinfo.render())?;
    let done = writer.finish(None)?;
    logging::notice("Backup complete");
    if a.json {
        json::print(&json::Create {
            schema: json::schema("create"),
            snapshot: None,
            unchanged_files: None,
            archive: Some(done.display().to_string()),
        })?;
    }
    Ok(0)
}

/// `create --backends opsiconfd`: `opsiconfd backup` writes its file into a private spool
/// directory (0700, removed afterwards), which is then imported like `import` does, so
/// opsiconfd's own backup health check sees its backup done.
fn create_opsiconfd(g: &Global, a: &CreateArgs) -> anyhow::Result<i32> {
    if a.backends.len() != 1 || a.destination.is_some() {
        return Err(Error::Invalid(
            "--backends opsiconfd stands alone and writes no archive (DEST): it stores \
             opsiconfd's own backup in the repository; run create once more for the \
             opsi-backup archive"
                .into(),
        )
        .into());
    }
    if g.repository.is_none() {
        return Err(Error::Invalid(
            "--backends opsiconfd needs a repository (--repository DIR) to store the backup in"
                .into(),
        )
        .into());
    }
    let mut r = repo::open(g)?;
    // Created 0700 (not by the umask): the backup holds the server's secrets.
    let spool = tempfile::Builder::new()
        .prefix("opsi-backup-opsiconfd-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()
        .map_err(|e| Error::io("creating the spool directory for opsiconfd backup", e))?;
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    let file = spool
        .path()
        .join(format!("opsiconfd-backup-{stamp}.msgpack.lz4"));
    opsiconfd::run_backup(&file, &a.opsiconfd_arg)?;
    let info = opsiconfd::import_file(
        &mut r,
        &file,
        &crate::cli::password::PasswordArgs::default(),
        "create opsiconfd".into(),
    )?;
    output::summary(format!(
        "opsiconfd snapshot {} saved ({} new of {})",
        human::short(&info.id),
        human::bytes(info.added),
        human::bytes(info.size)
    ));
    if a.json {
        json::print(&json::Create {
            schema: json::schema("create"),
            snapshot: Some(json::Snapshot::from(&info)),
            unchanged_files: None,
            archive: None,
        })?;
    }
    Ok(0)
}

/// The plan's bulk data kinds (depot, ...).
fn data_kinds(plan: &Plan) -> Vec<String> {
    plan.kinds
        .iter()
        .filter(|k| DataPart::parse(k).is_some())
        .cloned()
        .collect()
}

fn meta_host(sysinfo: &SysInfo) -> String {
    sysinfo.get("fqdn").unwrap_or_default().to_string()
}

/// The nightly path: a snapshot in the repository; with DEST, also exported as an archive.
fn create_snapshot(
    g: &Global,
    a: &CreateArgs,
    plan: &Plan,
    sysinfo: &SysInfo,
    compression: Compression,
) -> anyhow::Result<i32> {
    let r = repo::open(g)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let meta = SnapshotMeta {
        time: now.as_secs() as i64,
        host: meta_host(sysinfo),
        backends: plan.kinds.clone(),
        sysinfo: sysinfo
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        source: "create".into(),
    };
    let mut writer = r.begin_snapshot(meta)?;
    // restic's parent snapshot: unchanged files are not read again (unless --full).
    let parent = if a.full {
        None
    } else {
        writer.take_parent(&meta_host(sysinfo), parent::attach_checksums)?
    };
    if let Some(p) = &parent {
        logging::info(format!(
            "parent snapshot {} ({} files)",
            human::short(&p.snapshot),
            p.len()
        ));
    }
    let mut control = ControlWriter::new(writer);
    let bar = progress::bar_counting("create", || plan.expected_bytes(parent.as_deref()));
    let mut sink = ProgressSink::new(&mut control, bar.clone());
    let spool_dir = r.root().join("tmp");
    plan.run(
        &dump_options(a),
        parent.as_deref(),
        &mut sink,
        Some(&spool_dir),
    )?;
    let reused = sink.reused;
    bar.finish_and_clear();
    let writer = control.finish(&sysinfo.render())?;
    let info = writer.commit()?;
    // Without a parent nothing could be reused: saying "0 unchanged files" would only puzzle.
    let unchanged = match &parent {
        Some(_) => format!(
            "; {} not read again",
            output::count(reused, "unchanged file")
        ),
        None => String::new(),
    };
    output::summary(format!(
        "snapshot {} saved ({} new of {}{unchanged})",
        human::short(&info.id),
        human::bytes(info.added),
        human::bytes(info.size)
    ));
    let mut archive = None;
    if let Some(dest) = &a.destination {
        if plan.has_data() {
            logging::notice(format!(
                "the archive leaves out the server's bulk data ({}): snapshot {} holds it; \
                 `export` writes it as separate tar files",
                data_kinds(plan).join(", "),
                human::short(&info.id)
            ));
        }
        let done = export::export_snapshot(
            &r,
            &info,
            dest,
            compression,
            !a.no_cache,
            export::DataTars::Skip,
        )?;
        output::summary(done.display().to_string());
        archive = Some(done.display().to_string());
    }
    if a.json {
        json::print(&json::Create {
            schema: json::schema("create"),
            snapshot: Some(json::Snapshot::from(&info)),
            unchanged_files: parent.as_ref().map(|_| reused),
            archive,
        })?;
    }
    // Freeing the parent's file list (~10 allocations per file) took 8% of an unchanged
    // night of the file backend; the command is done, so it happens beside the exit.
    // A thread that cannot be started (a process limit) only means freeing it here.
    if let Some(p) = parent {
        let _ = std::thread::Builder::new().spawn(move || drop(p));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use crate::layout::{self, DataPart};
    use crate::store::{BULK_BACKENDS, BULK_PREFIX};

    /// The store tells the series of bulk data apart by these names, and cuts large files by
    /// this prefix (it cannot import the layout): the two must agree.
    #[test]
    fn the_store_knows_every_bulk_data_part() {
        let names: Vec<&str> = DataPart::ALL.iter().map(|p| p.name()).collect();
        assert_eq!(names, BULK_BACKENDS);
        for part in DataPart::ALL {
            let member = format!("{}/product/file", part.prefix());
            assert!(member.starts_with(BULK_PREFIX) && layout::is_data(&member));
        }
        assert!(!layout::is_data(&layout::mysql_dump("mysql")));
    }
}
