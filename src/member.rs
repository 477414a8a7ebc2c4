//! The unit every source produces and every sink consumes: one tar member of an opsi-backup
//! archive (path under `CONTENT/` or `CONTROL/`, type, metadata and, for files, its bytes).
//!
//! Create, export, import and restore are each one source piped to one sink (see `sink.rs`).

use serde::{Deserialize, Serialize};

/// What kind of file system object a member is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", content = "v", rename_all = "lowercase")]
pub enum MemberKind {
    File,
    Dir,
    /// A symbolic link with its target, kept as a link (never followed).
    Symlink(String),
    /// A tar hard link to an earlier member of the same archive.
    Hardlink(String),
    /// Anything else a foreign archive may hold (devices, fifos): kept for export, never restored.
    Other(u8),
}

/// Modification time as the original writes it: whole seconds in the ustar header and, for
/// members taken from a file system, Python's `str(st_mtime)` in a PAX `mtime` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mtime {
    pub secs: i64,
    /// The exact PAX `mtime` text, when the member has one (e.g. `1704067215.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pax: Option<String>,
}

impl Mtime {
    /// A file system time, rendered the way Python's `str(float)` does (what the original writes).
    pub fn from_unix(secs: i64, nanos: u32) -> Mtime {
        let f = secs as f64 + f64::from(nanos) * 1e-9;
        Mtime {
            secs: py_round(f),
            pax: Some(py_float_str(f)),
        }
    }

    /// The time with sub-second precision, for restoring it onto a file. The PAX text is read
    /// as a decimal (not through a float) so no precision is lost beyond what was written.
    pub fn precise(&self) -> (i64, u32) {
        self.pax
            .as_deref()
            .and_then(parse_decimal_time)
            .unwrap_or((self.secs, 0))
    }
}

/// `"1704067215.1234567"` -> (1704067215, 123456700); negative and exponent forms via f64.
fn parse_decimal_time(text: &str) -> Option<(i64, u32)> {
    let t = text.trim();
    if let Some((int, frac)) = t.split_once('.').or(Some((t, ""))) {
        if !int.is_empty()
            && int.bytes().all(|b| b.is_ascii_digit())
            && frac.bytes().all(|b| b.is_ascii_digit())
        {
            let secs: i64 = int.parse().ok()?;
            let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
            return Some((secs, digits.parse().ok()?));
        }
    }
    let f: f64 = t.parse().ok()?;
    let secs = f.floor();
    Some((
        secs as i64,
        ((f - secs) * 1e9).round().clamp(0.0, 999_999_999.0) as u32,
    ))
}

/// Python's `round()` on a float: half to even.
fn py_round(f: f64) -> i64 {
    let r = f.round();
    if (f - f.trunc()).abs() == 0.5 && (r as i64) % 2 != 0 {
        (r - f.signum()) as i64
    } else {
        r as i64
    }
}

/// Python's `str(float)` (shortest round-trip digits) for the magnitudes of Unix times.
pub fn py_float_str(f: f64) -> String {
    let s = format!("{f}");
    if s.contains('.') || s.contains("inf") || s.contains("NaN") {
        s
    } else {
        format!("{s}.0")
    }
}

/// One archive member's metadata. `size` is the content length for files and 0 otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Path inside the archive, without a trailing `/` (directories get it when written).
    pub path: String,
    pub kind: MemberKind,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub uname: String,
    pub gname: String,
    pub mtime: Mtime,
    pub size: u64,
    /// Header blocks exactly as a foreign tar writer wrote them, kept only where our encoder
    /// would not reproduce them, so that import then export gives back the same tar stream.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_hex")]
    pub raw_header: Option<Vec<u8>>,
    /// Where a file-system source found it (never written to an archive): lets the next
    /// backup recognise an unchanged file without reading it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<FileStamp>,
    /// Extended attributes, POSIX ACLs among them (`system.posix_acl_access`/`_default`), of
    /// bulk data (`DATA/`) only: archive content never has any, so archives stay the
    /// original's. Absent in the record when empty, so older records read the same.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<Xattr>,
}

/// One extended attribute: its full name with namespace (`user.x`, `security.x`, `trusted.x`,
/// `system.posix_acl_access`) and its value as the kernel gives it (binary for ACLs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    pub name: String,
    #[serde(with = "hex_bytes")]
    pub value: Vec<u8>,
}

/// A file's identity and change time, as restic compares them against the parent snapshot:
/// any write, chmod, chown or rename changes the ctime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    pub ino: u64,
    pub ctime_ns: i64,
}

impl Member {
    pub fn is_file(&self) -> bool {
        self.kind == MemberKind::File
    }

    /// A CONTROL member as the original writes it: mode 0644, mtime 0, no owner names.
    pub fn control(path: &str, size: u64) -> Member {
        Member {
            path: path.to_string(),
            kind: MemberKind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            uname: String::new(),
            gname: String::new(),
            mtime: Mtime { secs: 0, pax: None },
            size,
            raw_header: None,
            stamp: None,
            xattrs: Vec::new(),
        }
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let h = String::deserialize(d)?;
        hex::decode(h).map_err(serde::de::Error::custom)
    }
}

mod opt_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_some(&hex::encode(b)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        let o: Option<String> = Option::deserialize(d)?;
        o.map(|h| hex::decode(h).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_float_rendering() {
        assert_eq!(py_float_str(1704068200.0), "1704068200.0");
        assert_eq!(py_float_str(1704067215.25), "1704067215.25");
        let m = Mtime::from_unix(1704067215, 123_456_789);
        assert_eq!(m.pax.as_deref(), Some("1704067215.1234567"));
        assert_eq!(m.secs, 1704067215);
    }

    #[test]
    fn python_rounding_is_half_even() {
        assert_eq!(py_round(2.5), 2);
        assert_eq!(py_round(3.5), 4);
        assert_eq!(py_round(3.6), 4);
    }

    /// The record format's promise (store-format "Bulk data as it was on disk"): a member
    /// without attributes is written as before, and a reader ignores fields it does not know.
    #[test]
    fn xattrs_are_an_additive_field() {
        let m = Member::control("DATA/DEPOT/p/a", 1);
        let plain = serde_json::to_string(&m).unwrap();
        assert!(!plain.contains("xattrs"), "{plain}");
        let with = Member {
            xattrs: vec![Xattr {
                name: "user.a".into(),
                value: vec![0, 0xff],
            }],
            ..m.clone()
        };
        let json = serde_json::to_string(&with).unwrap();
        assert!(
            json.contains(r#""xattrs":[{"name":"user.a","value":"00ff"}]"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Member>(&json).unwrap(), with);
        let later = plain.replacen('{', r#"{"a_later_field":[1,2],"#, 1);
        assert_eq!(serde_json::from_str::<Member>(&later).unwrap(), m);
    }

    #[test]
    fn precise_time_from_pax() {
        let m = Mtime {
            secs: 10,
            pax: Some("10.5".into()),
        };
        assert_eq!(m.precise(), (10, 500_000_000));
    }
}
