//! `dispatch.conf` (`/etc/opsi/backendManager/dispatch.conf`): which backends serve which
//! methods. The only thing opsi-backup needs from it is the set of backends in use, which
//! decides what `--backends auto` backs up and restores.
//!
//! Rules, as python-opsi's `ConfigFile.parse` and `BackendDispatchConfigFile.parse` apply them:
//! - each line is trimmed; empty lines and lines whose first character is `#` or `;` are skipped;
//! - a `#` or `;` later in a line starts a comment unless it stands inside quotes (counted
//!   naively: an even number of `'` and of `"` before it means "outside") or directly after a
//!   backslash (the backslash stays in the text);
//! - the rest must match `^([^:]+)+\s*:\s*(\S.*)$`: the method regex up to the first `:`, then a
//!   comma-separated list of backend names (trimmed, empty ones dropped);
//! - a line that does not match is reported and skipped.
//!
//! Backend names are compared lower-cased here (the backend name of `<Name>.conf` is
//! lower-cased too).

use std::collections::BTreeSet;
use std::path::Path;

use crate::error::{IoContext, Result};

/// DispatchConfig is the parsed content of a dispatch.conf.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DispatchConfig {
    /// `(method regex, backend names as written)` in file order.
    pub entries: Vec<(String, Vec<String>)>,
    /// Lines that are neither blank, comments nor entries: `(1-based line number, text)`.
    pub bad_lines: Vec<(usize, String)>,
}

impl DispatchConfig {
    /// Parses the text of a dispatch.conf. Never fails: bad lines are collected.
    pub(crate) fn parse(text: &str) -> DispatchConfig {
        let mut out = DispatchConfig::default();
        for (idx, raw) in text.lines().enumerate() {
            let Some(line) = strip_comments(raw) else {
                continue;
            };
            match split_entry(&line) {
                Some((method, backends)) => out.entries.push((method, backends)),
                None => out.bad_lines.push((idx + 1, raw.trim().to_string())),
            }
        }
        out
    }

    /// Reads and parses a dispatch.conf file.
    pub(crate) fn read(path: &Path) -> Result<DispatchConfig> {
        let bytes = std::fs::read(path).path_ctx("reading", path)?;
        Ok(DispatchConfig::parse(&String::from_utf8_lossy(&bytes)))
    }

    /// The backends used on any line, lower-cased.
    pub(crate) fn used_backends(&self) -> BTreeSet<String> {
        self.entries
            .iter()
            .flat_map(|(_, backends)| backends.iter())
            .map(|b| b.to_lowercase())
            .collect()
    }
}

/// The line without its comment, or `None` when nothing is left (blank or comment line).
fn strip_comments(raw: &str) -> Option<String> {
    let mut line = raw.trim().to_string();
    if line.is_empty() || line.starts_with(['#', ';']) {
        return None;
    }
    for cc in [';', '#'] {
        if !line.contains(cc) {
            continue;
        }
        let parts: Vec<&str> = line.split(cc).collect();
        let (mut single, mut double) = (0usize, 0usize);
        let mut cut = None;
        for (i, part) in parts[..parts.len() - 1].iter().enumerate() {
            single += part.matches('\'').count();
            double += part.matches('"').count();
            if part.ends_with('\\') {
                continue; // an escaped comment character
            }
            if single % 2 == 0 && double % 2 == 0 {
                cut = Some(i);
                break;
            }
        }
        if let Some(i) = cut {
            line = parts[..=i].join(&cc.to_string());
        }
    }
    (!line.is_empty()).then_some(line)
}

/// Splits `method : backend, backend` as `^([^:]+)+\s*:\s*(\S.*)$` does.
fn split_entry(line: &str) -> Option<(String, Vec<String>)> {
    let (method, rest) = line.split_once(':')?;
    if method.is_empty() {
        return None;
    }
    let rest = rest.trim_start();
    if rest.is_empty() {
        return None;
    }
    let backends = rest
        .split(',')
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .map(str::to_string)
        .collect();
    Some((method.trim().to_string(), backends))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn used(text: &str) -> Vec<String> {
        DispatchConfig::parse(text)
            .used_backends()
            .into_iter()
            .collect()
    }

    #[test]
    fn typical_file() {
        let text = "\
# -*- coding: utf-8 -*-
# = = = = = = = = = = = = = = = = = = = = = = =
# =      backend dispatch configuration       =
# = = = = = = = = = = = = = = = = = = = = = = =

backend_.*         : mysql, opsipxeconfd, dhcpd
host_.*            : mysql, opsipxeconfd, dhcpd
productOnClient_.* : mysql, opsipxeconfd
configState_.*     : mysql, opsipxeconfd
.*                 : mysql
";
        let d = DispatchConfig::parse(text);
        assert!(d.bad_lines.is_empty());
        assert_eq!(d.entries.len(), 5);
        assert_eq!(d.entries[0].0, "backend_.*");
        assert_eq!(d.entries[0].1, ["mysql", "opsipxeconfd", "dhcpd"]);
        assert_eq!(used(text), ["dhcpd", "mysql", "opsipxeconfd"]);
    }

    #[test]
    fn comments_and_blank_lines() {
        let text = "\
   # indented comment
; semicolon comment

.* : file   # trailing comment, mysql
host_.* : File ; jsonrpc
audit.* : mysql\\#x, ldap
";
        assert_eq!(used(text), ["file", "ldap", "mysql\\#x"]);
    }

    #[test]
    fn comment_chars_inside_quotes_are_kept() {
        let d = DispatchConfig::parse("'a#b' : file\n\"x;y\" : mysql # real\n");
        assert_eq!(
            d.entries[0],
            ("'a#b'".to_string(), vec!["file".to_string()])
        );
        assert_eq!(
            d.entries[1],
            ("\"x;y\"".to_string(), vec!["mysql".to_string()])
        );
    }

    #[test]
    fn separators_and_empty_names() {
        assert_eq!(used(".*:file,,mysql ,\n"), ["file", "mysql"]);
        assert_eq!(used("a:b:c\n"), ["b:c"]);
        assert_eq!(used(".* : ,file,\n"), ["file"]);
    }

    #[test]
    fn bad_lines_are_reported_with_numbers() {
        let d = DispatchConfig::parse("# c\nno colon here\n.* :   \n: file\n.* : mysql\n");
        assert_eq!(
            d.bad_lines,
            [
                (2, "no colon here".to_string()),
                (3, ".* :".to_string()),
                (4, ": file".to_string())
            ]
        );
        assert_eq!(d.used_backends().into_iter().collect::<Vec<_>>(), ["mysql"]);
    }

    #[test]
    fn only_commas_means_no_backends() {
        let d = DispatchConfig::parse(".* : ,,\n");
        assert!(d.bad_lines.is_empty());
        assert!(d.used_backends().is_empty());
    }

    #[test]
    fn read_missing_file_is_an_io_error() {
        let e = DispatchConfig::read(Path::new("/nonexistent/dispatch.conf")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/dispatch.conf"), "{e}");
    }
}
