//! `import ARCHIVE...`: existing opsi-backup archives become snapshots. Each archive is
//! checked (every sha1 against CONTROL/checksums) in the same pass that stores it; a damaged
//! archive is not committed. The snapshot keeps the archive's own time and sysinfo.
//! An `opsiconfd backup` file, recognised by its content, becomes an opsiconfd snapshot
//! (`cli/opsiconfd.rs`) with the host and time of its meta.

use std::path::PathBuf;

use clap::Args;

use crate::archive::archive_file;
use crate::archive::naming;
use crate::archive::scan::{Checked, Scan};
use crate::cli::password::PasswordArgs;
use crate::cli::progress::{self, ProgressSink};
use crate::cli::{human, json, opsiconfd, output, parent, repo, Global};
use crate::store::SnapshotMeta;

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// opsi-backup archives (any compression) or `opsiconfd backup` files (msgpack or JSON,
    /// lz4 or gzip, optionally encrypted), told apart by their content.
    #[arg(required = true, value_name = "ARCHIVE")]
    pub archives: Vec<PathBuf>,
    #[command(flatten)]
    pub password: PasswordArgs,
    /// Print each archive with the snapshot it became as JSON (docs/json.md).
    #[arg(long)]
    pub json: bool,
}

pub(super) fn import(g: &Global, a: ImportArgs) -> anyhow::Result<i32> {
    let mut r = repo::open(g)?;
    let mut imported = Vec::new();
    for archive in &a.archives {
        let name = archive
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if opsiconfd::recognise(archive)? {
            let info =
                opsiconfd::import_file(&mut r, archive, &a.password, format!("import {name}"))?;
            output::summary(format!(
                "{} imported as opsiconfd snapshot {}",
                archive.display(),
                human::short(&info.id)
            ));
            imported.push(json::Imported {
                archive: archive.display().to_string(),
                snapshot: json::Snapshot::from(&info),
            });
            continue;
        }
        refuse_opsiconfd_name(archive)?;
        // CONTROL/sysinfo comes last in the stream but belongs in the snapshot's header, so a
        // first pass checks the archive and reads it; the second pass stores and re-checks.
        let mut first = Scan::default();
        let bar = progress::bar("check", None);
        archive_file::replay(archive, &mut ProgressSink::new(&mut first, bar.clone()))?;
        bar.finish_and_clear();
        first.refuse_bulk_data(&archive.display().to_string())?;
        first.ensure_intact(&archive.display().to_string())?;
        let sysinfo = first.sysinfo.clone().unwrap_or_default();
        let host = sysinfo
            .iter()
            .find(|(k, _)| k == "fqdn")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let meta = SnapshotMeta {
            time: naming::archive_time(archive),
            host,
            backends: first
                .contains
                .names()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            sysinfo,
            source: format!("import {name}"),
        };
        // The newest snapshot of the same server: its chunks are the older versions a
        // night's changed chunks are compressed against (delta groups).
        let host = meta.host.clone();
        let mut writer = r.begin_snapshot(meta)?;
        writer.take_parent(&host, parent::attach_checksums)?;
        let mut checked = Checked::new(&mut writer);
        let bar = progress::bar("import", Some(first.content_bytes));
        archive_file::replay(archive, &mut ProgressSink::new(&mut checked, bar.clone()))?;
        bar.finish_and_clear();
        checked
            .scan
            .refuse_bulk_data(&archive.display().to_string())?;
        checked.scan.ensure_intact(&archive.display().to_string())?;
        let info = writer.commit()?;
        output::summary(format!(
            "{} imported as snapshot {}",
            archive.display(),
            human::short(&info.id)
        ));
        imported.push(json::Imported {
            archive: archive.display().to_string(),
            snapshot: json::Snapshot::from(&info),
        });
    }
    if a.json {
        json::print(&json::Import {
            schema: json::schema("import"),
            imported,
        })?;
    }
    Ok(0)
}

/// A file named as `opsiconfd backup` names its files (`x.msgpack.lz4`, `x.json.gz.aes`: the
/// layers' own reading of a name) that does not start like one is not read as a tar archive
/// either: the archive reader's "truncated" would name the wrong cause.
fn refuse_opsiconfd_name(path: &std::path::Path) -> crate::Result<()> {
    if crate::opsiconfd::Layers::from_file_name(path).is_ok() {
        return Err(crate::Error::Invalid(format!(
            "{} is named like an opsiconfd backup file but does not start like one (no \
             encryption marker, lz4 or gzip frame, msgpack map or JSON object); nothing imported",
            path.display()
        )));
    }
    Ok(())
}
