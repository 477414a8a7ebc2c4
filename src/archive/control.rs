//! The two CONTROL members: `CONTROL/checksums` (`<sha1> <path>\n` per CONTENT file) and
//! `CONTROL/sysinfo` (`<key>: <value>\n`), and the sink wrapper that writes them after the
//! content, as the original does when it closes an archive.

use std::collections::HashMap;
use std::io::Read;

use sha1::{Digest, Sha1};

use crate::error::Result;
use crate::member::Member;
use crate::parent::ParentFile;
use crate::sink::MemberSink;

pub(crate) use crate::layout::{CHECKSUMS, SYSINFO};

/// Parsed CONTROL/checksums.
#[derive(Debug, Default, Clone)]
pub(crate) struct Checksums {
    map: HashMap<String, String>,
    /// The last line when the file does not end with a newline. The original sized this member
    /// in characters, not bytes, so non-ASCII paths cut its end off; the line may be incomplete.
    cut_line: Option<(String, String)>,
}

impl Checksums {
    pub(crate) fn parse(bytes: &[u8]) -> Checksums {
        let text = String::from_utf8_lossy(bytes);
        let mut out = Checksums::default();
        let complete = text.ends_with('\n');
        let lines: Vec<&str> = text.split('\n').filter(|l| !l.trim().is_empty()).collect();
        for (i, line) in lines.iter().enumerate() {
            let Some((sum, path)) = line.split_once(' ') else {
                continue;
            };
            let entry = (path.trim().to_string(), sum.trim().to_lowercase());
            if !complete && i == lines.len() - 1 {
                out.cut_line = Some(entry);
            } else {
                out.map.insert(entry.0, entry.1);
            }
        }
        out
    }

    /// The recorded sha1 of `path`. An incomplete last line answers for the paths it may be
    /// the beginning of; `candidates` are the archive's file paths without a complete line.
    pub(crate) fn get(&self, path: &str) -> Option<&str> {
        if let Some(s) = self.map.get(path) {
            return Some(s);
        }
        match &self.cut_line {
            Some((p, s)) if s.len() == 40 && path.starts_with(p.as_str()) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn paths(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }

    #[cfg(test)]
    pub(crate) fn is_cut(&self) -> bool {
        self.cut_line.is_some()
    }
}

/// Parses CONTROL/sysinfo leniently: `key: value` per line, split at the first colon.
pub(crate) fn parse_sysinfo(bytes: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Wraps a sink: computes the sha1 of every CONTENT file passing through and, in `finish`,
/// appends CONTROL/checksums and CONTROL/sysinfo.
pub(crate) struct ControlWriter<S: MemberSink> {
    inner: S,
    lines: Vec<(String, String)>,
}

impl<S: MemberSink> ControlWriter<S> {
    pub(crate) fn new(inner: S) -> ControlWriter<S> {
        ControlWriter {
            inner,
            lines: Vec::new(),
        }
    }

    /// Appends the two CONTROL members; `sysinfo` is the rendered CONTROL/sysinfo text.
    pub(crate) fn finish(mut self, sysinfo: &str) -> Result<S> {
        let checksums: String = self
            .lines
            .iter()
            .map(|(p, s)| format!("{s} {p}\n"))
            .collect();
        let sysinfo = sysinfo.to_string();
        for (path, text) in [(CHECKSUMS, checksums), (SYSINFO, sysinfo)] {
            let member = Member::control(path, text.len() as u64);
            self.inner.add(&member, &mut text.as_bytes())?;
        }
        Ok(self.inner)
    }
}

fn checksummed(member: &Member) -> bool {
    member.is_file() && crate::layout::is_content(&member.path)
}

impl<S: MemberSink> MemberSink for ControlWriter<S> {
    fn add(&mut self, member: &Member, content: &mut dyn Read) -> Result<()> {
        if !checksummed(member) {
            return self.inner.add(member, content);
        }
        let mut tee = Sha1Reader::new(content);
        self.inner.add(member, &mut tee)?;
        self.lines.push((member.path.clone(), tee.hex()));
        Ok(())
    }

    fn add_unsized(&mut self, member: Member, content: &mut dyn Read) -> Result<u64> {
        let path = member.path.clone();
        let mut tee = Sha1Reader::new(content);
        let size = self.inner.add_unsized(member, &mut tee)?;
        self.lines.push((path, tee.hex()));
        Ok(size)
    }

    fn note_checksum(&mut self, path: &str, sha1_hex: &str) {
        if crate::layout::is_content(path) {
            self.lines.push((path.to_string(), sha1_hex.to_string()));
        }
    }

    fn reuse(&mut self, member: &Member, parent: &ParentFile) -> Result<bool> {
        // Bulk data (`DATA/`) has no checksum line to carry over.
        if !crate::layout::is_content(&member.path) {
            return self.inner.reuse(member, parent);
        }
        let Some(sha1) = parent.sha1.as_deref() else {
            return Ok(false);
        };
        if !checksummed(member) || !self.inner.reuse(member, parent)? {
            return Ok(false);
        }
        self.lines.push((member.path.clone(), sha1.to_string()));
        Ok(true)
    }
}

/// Passes bytes through while hashing them with sha1.
pub(crate) struct Sha1Reader<'a> {
    inner: &'a mut dyn Read,
    hash: Sha1,
    read_from: bool,
}

impl<'a> Sha1Reader<'a> {
    pub(crate) fn new(inner: &'a mut dyn Read) -> Sha1Reader<'a> {
        Sha1Reader {
            inner,
            hash: Sha1::new(),
            read_from: false,
        }
    }
    pub(crate) fn hex(&self) -> String {
        hex::encode(self.hash.clone().finalize())
    }
    /// Whether anyone read from it, even only the end of an empty file.
    pub(crate) fn was_read(&self) -> bool {
        self.read_from
    }
}

impl Read for Sha1Reader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.read_from = true;
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_last_line_still_answers() {
        let sum = "a".repeat(40);
        let text = format!("{sum} CONTENT/CONF/ok\n{sum} CONTENT/CONF/Notiz");
        let c = Checksums::parse(text.as_bytes());
        assert!(c.is_cut());
        assert_eq!(c.get("CONTENT/CONF/ok"), Some(sum.as_str()));
        assert_eq!(c.get("CONTENT/CONF/Notizen.txt"), Some(sum.as_str()));
        assert_eq!(c.get("CONTENT/CONF/other"), None);
    }

    #[test]
    fn sysinfo_parse_is_lenient() {
        let s = parse_sysinfo(b"hostname: opsi\ngarbage\nsysVersion: (12, 4)\n");
        assert_eq!(
            s,
            vec![
                ("hostname".to_string(), "opsi".to_string()),
                ("sysVersion".into(), "(12, 4)".into())
            ]
        );
    }
}
