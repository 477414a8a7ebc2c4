//! The glue between `opsiconfd backup` files and the repository, for `import`, `export` and
//! `create --backends opsiconfd`: a file is decoded and split (`crate::opsiconfd`) before a
//! snapshot is begun, so a file that is not whole, not readable with the password or not an
//! opsiconfd backup stores nothing; a snapshot is put back together through the layers the
//! destination's name asks for, into a temporary file renamed into place at the end.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::cli::human;
use crate::cli::password::PasswordArgs;
use crate::cli::progress::{self, ProgressSink};
use crate::error::{Error, IoContext, Result};
use crate::logging;
use crate::member::Member;
use crate::opsiconfd::layers::{self, Encoder, Encoding, Layers};
use crate::opsiconfd::{crypt, split, Joiner, Meta, FRAME_PATH};
use crate::store::{Repository, SnapshotInfo, SnapshotMeta, OPSICONFD_BACKEND};

/// Sysinfo keys of an opsiconfd snapshot that export reads back.
const ENCODING: &str = "encoding";
const DOCUMENT_BYTES: &str = "document_bytes";

/// Whether `path` is an opsiconfd backup file (by its first bytes).
pub(super) fn recognise(path: &Path) -> Result<bool> {
    layers::recognise(path)
}

/// Stores the opsiconfd backup file `path` as a snapshot; `source` says how it came.
pub(super) fn import_file(
    r: &mut Repository,
    path: &Path,
    password: &PasswordArgs,
    source: String,
) -> Result<SnapshotInfo> {
    let name = path.display().to_string();
    let decoded = layers::decode(path, || password.read(&name))?;
    let doc = &decoded.doc;
    let parts = split::split(doc)?;
    let meta = Meta::parse(parts.encoding, &doc[parts.meta.clone()])?;
    if r.allow_kinds()? {
        logging::notice(format!(
            "repository format raised to version {} so that it can hold opsiconfd snapshots",
            crate::store::FORMAT_VERSION
        ));
    }
    let mut sysinfo = meta.pairs.clone();
    sysinfo.push((ENCODING.into(), parts.encoding.name().into()));
    sysinfo.push((DOCUMENT_BYTES.into(), doc.len().to_string()));
    sysinfo.push(("layers".into(), decoded.layers.describe()));
    let smeta = SnapshotMeta {
        time: meta.time,
        host: meta.host.clone(),
        backends: vec![OPSICONFD_BACKEND.into()],
        sysinfo,
        source,
    };
    let mut writer = r.begin_snapshot(smeta)?;
    writer.take_parent(&meta.host, |_, _| Ok(()))?;
    let bar = progress::bar("import", Some(doc.len() as u64));
    let mut sink = ProgressSink::new(&mut writer, bar.clone());
    use crate::sink::MemberSink;
    sink.add(
        &Member::control(FRAME_PATH, parts.frame.len() as u64),
        &mut &parts.frame[..],
    )?;
    for s in &parts.streams {
        sink.add(&Member::control(&s.path, s.len), &mut s.reader(doc))?;
    }
    bar.finish_and_clear();
    writer.commit()
}

fn sysinfo<'a>(info: &'a SnapshotInfo, key: &str) -> Option<&'a str> {
    info.sysinfo
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Writes opsiconfd snapshot `info` to `dest` (a file named by its layers, or a directory
/// for opsiconfd's own kind of name). Returns the file written.
pub(super) fn export_snapshot(
    r: &Repository,
    info: &SnapshotInfo,
    dest: &Path,
    password: &PasswordArgs,
) -> Result<PathBuf> {
    let dest = if dest.is_dir() {
        let time = chrono::DateTime::<chrono::Utc>::from_timestamp(info.time, 0)
            .unwrap_or_default()
            .format("%Y%m%d-%H%M%S");
        let enc = sysinfo(info, ENCODING).unwrap_or("msgpack");
        dest.join(format!("opsiconfd-backup-{time}.{enc}.lz4"))
    } else {
        dest.to_path_buf()
    };
    let layers = Layers::from_file_name(&dest)?;
    let stored = match sysinfo(info, ENCODING) {
        Some("json") => Encoding::Json,
        _ => Encoding::Msgpack,
    };
    if layers.encoding != stored {
        return Err(Error::Invalid(format!(
            "snapshot {} holds a {} document and is given back as it was imported; name the \
             file .{}[.lz4|.gz][.aes] (converting between msgpack and JSON is not supported)",
            human::short(&info.id),
            stored.name(),
            stored.name()
        )));
    }
    if dest.exists() {
        return Err(Error::Invalid(format!(
            "{} exists; not overwritten",
            dest.display()
        )));
    }
    let password = if layers.encrypted {
        Some(password.read(&dest.display().to_string())?)
    } else {
        None
    };
    let size: u64 = sysinfo(info, DOCUMENT_BYTES)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".opsi-backup-export-")
        .tempfile_in(&dir)
        .path_ctx("creating a temporary file in", &dir)?;
    let bar = progress::bar("export", Some(info.size));
    let file = tmp
        .as_file()
        .try_clone()
        .ctx("opening the temporary file")?;
    let written = match password {
        None => {
            let enc = Encoder::new(layers.compression, size, BufWriter::new(file));
            let enc = join(r, info, enc, &bar)?;
            enc.finish()
                .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
                .and_then(|f| f.sync_all())
        }
        Some(pw) => {
            let enc = Encoder::new(layers.compression, size, Vec::new());
            let mut data = join(r, info, enc, &bar)?
                .finish()
                .map_err(|e| Error::io("compressing", e))?;
            crypt::encrypt(&mut data, &pw)?;
            let mut f = file;
            f.write_all(&data).and_then(|()| f.sync_all())
        }
    };
    bar.finish_and_clear();
    written.map_err(|e| crate::error::write_error(&dest, e))?;
    tmp.persist_noclobber(&dest)
        .map_err(|e| crate::error::write_error(&dest, e.error))?;
    crate::durable::sync_dir(&dir)?;
    Ok(dest)
}

fn join<W: Write>(
    r: &Repository,
    info: &SnapshotInfo,
    out: W,
    bar: &indicatif::ProgressBar,
) -> Result<W> {
    let mut joiner = Joiner::new(out);
    r.replay(&info.id, &mut ProgressSink::new(&mut joiner, bar.clone()))?;
    Ok(joiner.finish()?.0)
}

/// The `opsiconfd` executable: `OPSI_BACKUP_OPSICONFD` (tests give a stand-in), else
/// `opsiconfd` from the PATH.
fn executable() -> std::ffi::OsString {
    std::env::var_os("OPSI_BACKUP_OPSICONFD").unwrap_or_else(|| "opsiconfd".into())
}

/// Runs `opsiconfd backup --quiet [extra...] FILE`; its error output becomes the error.
pub(super) fn run_backup(file: &Path, extra: &[String]) -> Result<()> {
    let exe = executable();
    logging::notice(format!(
        "Running {} backup into {}",
        exe.to_string_lossy(),
        file.display()
    ));
    let out = std::process::Command::new(&exe)
        .arg("backup")
        .arg("--quiet")
        .args(extra)
        .arg(file)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::io(format!("cannot run {}", exe.to_string_lossy()), e))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(Error::Invalid(format!(
            "{} backup failed ({}): {}",
            exe.to_string_lossy(),
            out.status,
            tail.join(" / ")
        )));
    }
    if !file.is_file() {
        return Err(Error::Invalid(format!(
            "{} backup succeeded but wrote no {}",
            exe.to_string_lossy(),
            file.display()
        )));
    }
    Ok(())
}

/// Refuses to treat an opsiconfd snapshot as an opsi-backup archive (restore, export to a
/// tar): it holds another kind of data.
pub(super) fn refuse(info: &SnapshotInfo, what: &str) -> Result<()> {
    if info.kind() == crate::store::SnapshotKind::Opsiconfd {
        return Err(Error::Invalid(format!(
            "snapshot {} is an opsiconfd backup: {what}; export it to a file \
             (`export {} x.msgpack.lz4`) and use `opsiconfd restore`",
            human::short(&info.id),
            human::short(&info.id)
        )));
    }
    Ok(())
}
