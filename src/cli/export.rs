//! `export SNAPSHOT DEST [-c]`: a full, self-contained opsi-backup archive from a snapshot,
//! written, verified and renamed into place like `create` does. The archive is exactly the
//! original's format: the snapshot's bulk data (depot, ...) goes into separate plain tar
//! files beside it (`archive/data_tars.rs` says why).

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use crate::archive::archive_file::ArchiveFileWriter;
use crate::archive::compression::Compression;
use crate::archive::data_tars::DataTars as TarsBeside;
use crate::archive::naming;
use crate::archive::segment_cache::SegmentCache;
use crate::cli::password::PasswordArgs;
use crate::cli::progress::{self, ProgressSink};
use crate::cli::{human, json, opsiconfd, output, repo, Global};
use crate::layout;
use crate::logging;
use crate::member::Member;
use crate::opsi::sysinfo::SysInfo;
use crate::sink::MemberSink;
use crate::store::{Repository, SnapshotInfo, SnapshotKind};

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The snapshot: `latest` or a unique id prefix.
    #[arg(value_name = "SNAPSHOT")]
    pub snapshot: String,
    /// The archive file, or an existing directory for a generated name. For an opsiconfd
    /// snapshot, the file's extensions choose its layers as `opsiconfd backup` does
    /// (`x.msgpack.lz4`, `x.json.gz`, `x.msgpack.lz4.aes`).
    #[arg(value_name = "DEST")]
    pub destination: PathBuf,
    /// Compression of the archive (a bare -c means none, as in the original).
    #[arg(short = 'c', long, default_value = "bz2", num_args = 0..=1, default_missing_value = "none", value_parser = ["gz", "bz2", "none"])]
    pub compression: String,
    /// Compress every segment afresh: neither use nor fill the export cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Print the snapshot and the archive written as JSON (docs/json.md).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub password: PasswordArgs,
}

/// What becomes of a snapshot's bulk data (`DATA/...`) on export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DataTars {
    /// Left out (create's nightly archive: the snapshot holds it).
    Skip,
    /// Written as separate tar files beside the archive.
    Beside,
}

/// Sends the archive's members to the archive and the bulk data to its tars (or nowhere), in
/// one pass over the snapshot.
struct Split<'a> {
    archive: &'a mut dyn MemberSink,
    data: Option<&'a mut TarsBeside>,
}

impl MemberSink for Split<'_> {
    fn add(&mut self, member: &Member, content: &mut dyn std::io::Read) -> crate::Result<()> {
        if !layout::is_data(&member.path) {
            return self.archive.add(member, content);
        }
        match &mut self.data {
            Some(tars) => tars.add(member, content),
            None => Ok(()),
        }
    }
}

/// Writes snapshot `info` to `dest` (a file, or a directory for the original's generated name).
/// With `use_cache`, compressed segments of earlier exports are spliced where the archive did
/// not change (see `archive/segment_cache.rs`).
pub(super) fn export_snapshot(
    r: &Repository,
    info: &SnapshotInfo,
    dest: &std::path::Path,
    compression: Compression,
    use_cache: bool,
    data: DataTars,
) -> anyhow::Result<PathBuf> {
    Ok(export_with_data(r, info, dest, compression, use_cache, data)?.0)
}

/// `export_snapshot`, also returning the tar files of the bulk data written beside.
pub(super) fn export_with_data(
    r: &Repository,
    info: &SnapshotInfo,
    dest: &std::path::Path,
    compression: Compression,
    use_cache: bool,
    data: DataTars,
) -> anyhow::Result<(PathBuf, Vec<PathBuf>)> {
    // Cleaned as `create` cleans what it writes, so the name is the one `create` would give.
    let mut sysinfo = SysInfo::new();
    for (k, v) in &info.sysinfo {
        sysinfo.set(k, v);
    }
    let name = naming::archive_name_at(
        sysinfo.get("hostname"),
        sysinfo.get("opsiVersion"),
        compression,
        info.time,
    );
    let dest = naming::destination(Some(dest), &name);
    warn_name_mismatch(&dest, compression);
    // The cache holds archive data in plain: kept off for an encrypted repository.
    let codec = compression
        .codec()
        .filter(|_| use_cache && !r.is_encrypted());
    let cache = codec.and_then(|codec| {
        SegmentCache::open(r.root(), codec)
            .map_err(|e| logging::warning(format!("export cache not used: {e}")))
            .ok()
            .map(Arc::new)
    });
    let mut writer = ArchiveFileWriter::create_with_cache(&dest, compression, cache.clone())?;
    let mut tars = match data {
        DataTars::Beside => Some(TarsBeside::beside(&dest)),
        DataTars::Skip => None,
    };
    let bar = progress::bar("export", Some(info.size));
    let mut split = Split {
        archive: &mut writer,
        data: tars.as_mut(),
    };
    r.replay(&info.id, &mut ProgressSink::new(&mut split, bar.clone()))?;
    bar.finish_and_clear();
    let done = writer.finish(None)?;
    let beside = match tars {
        Some(t) => t.finish()?,
        None => Vec::new(),
    };
    for t in &beside {
        logging::notice(format!(
            "Wrote the snapshot's {} beside the archive: {} (a plain tar: the opsi-backup \
             archive holds only what the original reads)",
            t.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.rsplit('.').nth(1))
                .unwrap_or("data"),
            t.display()
        ));
    }
    let reused = match &cache {
        Some(c) => {
            if let Err(e) = c.sweep() {
                logging::warning(format!("export cache: cleaning up failed: {e}"));
            }
            let s = c.stats();
            format!(
                " ({} of {} compressed segments reused from earlier exports)",
                s.hits,
                s.hits + s.misses
            )
        }
        None => String::new(),
    };
    logging::notice(format!(
        "Exported snapshot {} to {}{reused}",
        human::short(&info.id),
        done.display()
    ));
    Ok((done, beside))
}

/// An archive named `x.tar.gz` but written with `-c bz2` keeps its name (as the original
/// does), with a warning: the name would mislead tools that go by it.
pub(super) fn warn_name_mismatch(dest: &std::path::Path, compression: Compression) {
    if let Some(named) = naming::name_mismatch(dest, compression) {
        logging::warning(format!(
            "{}: the name says {}, but the archive is written with {}; the name is kept \
             (opsi-backup reads it by its content)",
            dest.display(),
            named.describe(),
            compression.describe()
        ));
    }
}

pub(super) fn export(g: &Global, a: ExportArgs) -> anyhow::Result<i32> {
    let r = repo::open(g)?;
    let info = r.resolve(&a.snapshot)?;
    if info.kind() == SnapshotKind::Opsiconfd {
        // The file opsiconfd reads, its layers chosen by DEST's name (-c does not apply).
        let done = opsiconfd::export_snapshot(&r, &info, &a.destination, &a.password)?;
        logging::notice(format!(
            "Exported opsiconfd snapshot {} to {}",
            human::short(&info.id),
            done.display()
        ));
        output::summary(done.display().to_string());
        if a.json {
            json::print(&json::Export {
                schema: json::schema("export"),
                snapshot: json::Snapshot::from(&info),
                archive: done.display().to_string(),
            })?;
        }
        return Ok(0);
    }
    let (done, beside) = export_with_data(
        &r,
        &info,
        &a.destination,
        Compression::parse(&a.compression)?,
        !a.no_cache,
        DataTars::Beside,
    )?;
    output::summary(done.display().to_string());
    for t in &beside {
        output::summary(t.display().to_string());
    }
    if a.json {
        json::print(&json::Export {
            schema: json::schema("export"),
            snapshot: json::Snapshot::from(&info),
            archive: done.display().to_string(),
        })?;
    }
    Ok(0)
}
