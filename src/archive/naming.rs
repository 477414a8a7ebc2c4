//! How the original names its archives and where it puts them: the generated name
//! `<hostname>_<opsiVersion>_<date>_<time>.tar[.bz2|.gz]`, the DEST rule, and the backup time
//! read back from such a name (import).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Local};

use crate::archive::compression::Compression;

/// The original's generated file name: `<hostname>_<opsiVersion>_<date>_<time>.tar[.bz2|.gz]`,
/// the time as Python's `str(datetime.now())` with ' ' -> '_' and ':' -> '-'. `hostname` and
/// `opsi_version` are the sysinfo's (`opsi` and `unknown` when missing).
pub(crate) fn archive_name(
    hostname: Option<&str>,
    opsi_version: Option<&str>,
    compression: Compression,
    at: DateTime<Local>,
) -> String {
    let micros = at.timestamp_subsec_micros();
    let mut stamp = at.format("%Y-%m-%d_%H-%M-%S").to_string();
    if micros != 0 {
        stamp.push_str(&format!(".{micros:06}"));
    }
    let host = hostname.unwrap_or("opsi");
    let version = opsi_version.unwrap_or("unknown");
    format!("{host}_{version}_{stamp}.tar{}", compression.suffix())
}

/// `archive_name` for a backup taken at `unix` seconds (an exported snapshot keeps its own time).
pub(crate) fn archive_name_at(
    hostname: Option<&str>,
    opsi_version: Option<&str>,
    compression: Compression,
    unix: i64,
) -> String {
    let at = DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .with_timezone(&Local);
    archive_name(hostname, opsi_version, compression, at)
}

/// DEST rules of the original: none -> current directory; an existing directory -> a generated
/// name inside it; anything else is the file (an existing one is replaced).
pub(crate) fn destination(dest: Option<&Path>, generated: &str) -> PathBuf {
    match dest {
        None => PathBuf::from(generated),
        Some(d) if d.is_dir() => d.join(generated),
        Some(d) => d.to_path_buf(),
    }
}

/// The compression a file name promises (`.tar.gz`/`.tgz`, `.tar.bz2`/`.tbz2`, `.tar`) when it
/// is not `compression`; `None` when it matches or the name promises nothing. The name is the
/// user's to choose (the original keeps it too); readers go by the content.
pub(crate) fn name_mismatch(dest: &Path, compression: Compression) -> Option<Compression> {
    let name = dest.file_name()?.to_string_lossy().to_ascii_lowercase();
    let named = if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        Compression::Gz
    } else if name.ends_with(".tar.bz2") || name.ends_with(".tbz2") || name.ends_with(".tbz") {
        Compression::Bz2
    } else if name.ends_with(".tar") {
        Compression::None
    } else {
        return None;
    };
    (named != compression).then_some(named)
}

/// The archive's time: the original's generated name ends in `_YYYY-MM-DD_HH-MM-SS[.ffffff]`
/// (local time); otherwise the file's mtime.
pub(crate) fn archive_time(path: &Path) -> i64 {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.split(".tar").next().unwrap_or(&name);
    let parts: Vec<&str> = stem.rsplitn(3, '_').collect();
    if parts.len() == 3 {
        let text = format!("{}_{}", parts[1], parts[0]);
        let text = text.split('.').next().unwrap_or(&text);
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d_%H-%M-%S") {
            if let Some(local) = t.and_local_timezone(Local).earliest() {
                return local.timestamp();
            }
        }
    }
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_promising_another_compression_is_told() {
        let m = |n: &str, c| name_mismatch(Path::new(n), c);
        assert_eq!(m("/b/x.tar.gz", Compression::Bz2), Some(Compression::Gz));
        assert_eq!(m("x.TGZ", Compression::None), Some(Compression::Gz));
        assert_eq!(m("x.tar", Compression::Gz), Some(Compression::None));
        assert_eq!(m("x.tar.bz2", Compression::Gz), Some(Compression::Bz2));
        assert_eq!(m("x.tar.bz2", Compression::Bz2), None);
        assert_eq!(m("x.tar.gz", Compression::Gz), None);
        assert_eq!(m("backup", Compression::Gz), None);
    }

    /// A generated name gives back the time it was made at.
    #[test]
    fn generated_names_carry_their_time() {
        let unix = 1_704_067_215;
        let name = archive_name_at(Some("opsi"), Some("4.3.1"), Compression::Bz2, unix);
        assert!(name.starts_with("opsi_4.3.1_"), "{name}");
        assert!(name.ends_with(".tar.bz2"), "{name}");
        assert_eq!(archive_time(Path::new(&name)), unix);
        let plain = archive_name_at(None, None, Compression::None, unix);
        assert!(plain.starts_with("opsi_unknown_") && plain.ends_with(".tar"));
    }

    /// Microseconds are written as Python writes them, and ignored when read back.
    #[test]
    fn micros_follow_python() {
        let at = DateTime::from_timestamp(1_704_067_215, 250_000_000)
            .unwrap()
            .with_timezone(&Local);
        let name = archive_name(Some("h"), Some("v"), Compression::Gz, at);
        assert!(name.ends_with(".250000.tar.gz"), "{name}");
        assert_eq!(archive_time(Path::new(&name)), 1_704_067_215);
    }

    #[test]
    fn destination_rules() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(destination(None, "n.tar"), PathBuf::from("n.tar"));
        assert_eq!(
            destination(Some(dir.path()), "n.tar"),
            dir.path().join("n.tar")
        );
        let file = dir.path().join("mine.tar");
        assert_eq!(destination(Some(&file), "n.tar"), file);
    }
}
