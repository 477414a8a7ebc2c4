//! Renaming the config server in a restored file backend (`baseDir`, by default
//! /var/lib/opsi/config, plus its `hostKeyFile`, by default /etc/opsi/pckeys).
//!
//! Steps, each durable before the next (see [`super::line_rewrite`]):
//! 1. find the config server when not given ([`find_config_server`]);
//! 2. remove host NEW when it exists: `depots/NEW.ini`, `clients/NEW.ini`, `audit/NEW.hw`,
//!    `audit/NEW.sw`, its options in `clientgroups.ini`, its line in the host key file
//!    (what python-opsi's `host_deleteObjects` removes in this backend);
//! 3. move `depots/OLD.ini` (and `clients/`, `audit/` files named after OLD) to NEW's name,
//!    rewriting the content on the way; in the depot's own `remoteurl`/`webdavurl` options a
//!    URL host that is OLD's short host name becomes NEW's;
//! 4. rewrite every other file under `baseDir` that mentions OLD (config.ini, client and depot
//!    ini files, clientgroups.ini, templates, product control files...), and the host key file.
//!
//! A crash between steps leaves a consistent state for a rerun with the same arguments: OLD's
//! data is removed only after NEW's copy is in place, and a leftover NEW is removed again.

use std::fs;
use std::path::{Path, PathBuf};

use crate::durable::sync_dir;
use crate::error::{Error, IoContext, Result};
/// The config server rule is the file backend's knowledge (`opsi::config_server`); the
/// rename's tests and callers find it here, beside the rename that uses it.
pub use crate::opsi::config_server::find_config_server;
use crate::opsi::config_server::{
    any_line, host_file, host_ids, section_name, split_option, value_start,
};
use crate::opsi::host_id::validate_server_id;
use crate::rename::line_rewrite::{rewrite_lines, LineEdit};
use crate::rename::replacer::{dedupe_json_list, replace_url_host, IdReplacer};
use crate::rename::RenameReport;

/// Files named after a host: (directory under baseDir, extension).
const HOST_FILES: &[(&str, &str)] = &[
    ("depots", "ini"),
    ("clients", "ini"),
    ("audit", "hw"),
    ("audit", "sw"),
];

/// The depot ini sections and options that hold the depot's remote URLs.
const URL_OPTIONS: &[(&str, &str)] = &[
    ("depotshare", "remoteurl"),
    ("depotshare", "webdavurl"),
    ("repository", "remoteurl"),
    ("workbench", "remoteurl"),
];

/// Settings beyond the backend directory.
#[derive(Debug, Clone, Default)]
pub struct FileRenameOptions {
    /// The backend's `hostKeyFile` (`<hostId>:<key>` lines). When `None`, host keys are not
    /// renamed unless the file lies inside `baseDir`.
    pub host_key_file: Option<PathBuf>,
    /// This machine's FQDN: the file backend treats the depot with this id as the config
    /// server (python-opsi: `forceHostId(getfqdn())`). Used only when `old` is `None`.
    pub local_fqdn: Option<String>,
}

/// Renames the config server `old` (found when `None`, see [`find_config_server`]) to `new`
/// in the file backend at `base_dir`, removing an existing host `new` first. The host key file
/// is not handled (NEW's key stays, OLD's is renamed only if the file lies inside `base_dir`):
/// callers that know it use [`rename_in_file_backend_with`].
pub fn rename_in_file_backend(
    base_dir: &Path,
    old: Option<&str>,
    new: &str,
) -> Result<RenameReport> {
    rename_in_file_backend_with(base_dir, old, new, &FileRenameOptions::default())
}

/// [`rename_in_file_backend`] with the host key file and this machine's FQDN.
pub fn rename_in_file_backend_with(
    base_dir: &Path,
    old: Option<&str>,
    new: &str,
    options: &FileRenameOptions,
) -> Result<RenameReport> {
    let new = validate_server_id(new)?;
    let depots = host_ids(&base_dir.join("depots"), "ini")?;
    let old = match old {
        Some(old) => validate_server_id(old)?,
        None => find_config_server(base_dir, &depots, options.local_fqdn.as_deref(), &new)?,
    };
    if !depots.contains(&old) {
        return Err(Error::Invalid(format!(
            "cannot rename the config server: no depot {old} in {}",
            base_dir.join("depots").display()
        )));
    }
    let mut report = RenameReport::new(&old, &new);
    if old == new {
        return Ok(report);
    }
    let key_file = options.host_key_file.as_deref().filter(|p| p.is_file());
    remove_host(base_dir, key_file, &new, &mut report)?;
    // Inside baseDir, the walk below rewrites it anyway.
    let host_keys = key_file.filter(|p| !p.starts_with(base_dir));

    let replacer = IdReplacer::new(&old, &new);
    let short = (short_name(&old), short_name(&new));
    for (dir, ext) in HOST_FILES {
        let Some(src) = host_file(&base_dir.join(dir), ext, &old)? else {
            continue;
        };
        let dest = base_dir.join(dir).join(format!("{new}.{ext}"));
        let is_depot = *dir == "depots";
        let mut section = String::new();
        rewrite_lines(&src, &dest, |line| {
            let mut out = rewrite_line(&replacer, line, &mut report.references_replaced);
            if is_depot {
                if let Some(name) = section_name(line) {
                    section = name;
                }
                let current = out.as_deref().unwrap_or(line);
                if let Some(fixed) = fix_url_line(current, &section, short) {
                    report.references_replaced += 1;
                    out = Some(fixed);
                }
            }
            out.map_or(LineEdit::Keep, LineEdit::Replace)
        })?;
        report.files_renamed += 1;
    }

    let mut files: Vec<PathBuf> = Vec::new();
    for entry in walkdir::WalkDir::new(base_dir).follow_links(false) {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(base_dir).to_path_buf();
            Error::io(
                format!("listing {}", path.display()),
                e.into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("directory loop")),
            )
        })?;
        if entry.file_type().is_file() {
            files.push(entry.into_path());
        }
    }
    files.extend(host_keys.map(Path::to_path_buf));
    for path in files {
        if !any_line(&path, |l| replacer.mentions(l))? {
            continue;
        }
        let changed = rewrite_lines(&path, &path, |line| {
            rewrite_line(&replacer, line, &mut report.references_replaced)
                .map_or(LineEdit::Keep, LineEdit::Replace)
        })?;
        if changed > 0 {
            report.files_rewritten += 1;
        }
    }
    Ok(report)
}

/// Step 2: what deleting host `new` removes in a file backend.
fn remove_host(
    base_dir: &Path,
    host_keys: Option<&Path>,
    new: &str,
    report: &mut RenameReport,
) -> Result<()> {
    for (dir, ext) in HOST_FILES {
        let dir = base_dir.join(dir);
        if let Some(path) = host_file(&dir, ext, new)? {
            fs::remove_file(&path).path_ctx("removing", &path)?;
            sync_dir(&dir)?;
            report.files_removed += 1;
        }
    }
    let is_new = |key: &str| key.trim().eq_ignore_ascii_case(new);
    let groups = base_dir.join("clientgroups.ini");
    let mut files: Vec<(&Path, bool)> = vec![(&groups, true)];
    files.extend(host_keys.map(|p| (p, false)));
    for (path, ini) in files {
        if !path.is_file() {
            continue;
        }
        let key_of = |line: &[u8]| -> Option<String> {
            let text = std::str::from_utf8(line).ok()?;
            if ini {
                split_option(line).map(|(k, _)| k.to_string())
            } else {
                text.split_once(':').map(|(k, _)| k.to_string())
            }
        };
        let removed = rewrite_lines(path, path, |line| match key_of(line) {
            Some(key) if is_new(&key) => LineEdit::Remove,
            _ => LineEdit::Keep,
        })?;
        report.lines_removed += removed;
    }
    report.removed_existing_host = report.files_removed > 0 || report.lines_removed > 0;
    Ok(())
}

/// One line with references replaced and, in an option whose value is a JSON list, duplicates
/// dropped. `None` when the line has no reference.
fn rewrite_line(replacer: &IdReplacer, line: &[u8], count: &mut usize) -> Option<Vec<u8>> {
    let (out, n) = replacer.replace(line)?;
    *count += n;
    let deduped = std::str::from_utf8(&out).ok().and_then(|text| {
        let at = value_start(text)?;
        dedupe_json_list(&text[at..]).map(|v| format!("{}{v}", &text[..at]).into_bytes())
    });
    Some(deduped.unwrap_or(out))
}

/// In a depot ini's URL option, a URL whose host is the old short host name gets the new one.
fn fix_url_line(line: &[u8], section: &str, (old, new): (&str, &str)) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(line).ok()?;
    let (key, _) = split_option(line)?;
    let known = URL_OPTIONS
        .iter()
        .any(|(s, k)| section.eq_ignore_ascii_case(s) && key.eq_ignore_ascii_case(k));
    if !known {
        return None;
    }
    let at = value_start(text)?;
    let value = &text[at..];
    let trimmed = value.trim();
    let fixed = replace_url_host(trimmed, old, new)?;
    let lead = &value[..value.len() - value.trim_start().len()];
    let tail = &value[value.trim_end().len()..];
    Some(format!("{}{lead}{fixed}{tail}", &text[..at]).into_bytes())
}

fn short_name(id: &str) -> &str {
    id.split('.').next().unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_lines() {
        assert_eq!(
            split_option(b"remoteurl = smb://opsi/opsi_depot\n"),
            Some(("remoteurl", " smb://opsi/opsi_depot\n"))
        );
        assert_eq!(split_option(b"[depotshare]\n"), None);
        assert_eq!(split_option(b"# x = y\n"), None);
        assert_eq!(
            section_name(b" [depotshare]\n").as_deref(),
            Some("depotshare")
        );
        assert_eq!(
            fix_url_line(
                b"remoteurl = smb://opsi/opsi_depot\n",
                "depotshare",
                ("opsi", "neu")
            )
            .as_deref(),
            Some(&b"remoteurl = smb://neu/opsi_depot\n"[..])
        );
        assert_eq!(
            fix_url_line(b"localurl = file:///opsi\n", "depotshare", ("opsi", "neu")),
            None
        );
    }

    #[test]
    fn json_values_are_deduplicated() {
        let r = IdReplacer::new("old.b.cd", "new.b.cd");
        let mut n = 0;
        let out = rewrite_line(
            &r,
            b"possiblevalues = [\"old.b.cd\", \"new.b.cd\"]\n",
            &mut n,
        )
        .unwrap();
        assert_eq!(out, b"possiblevalues = [\"new.b.cd\"]\n");
        assert_eq!(n, 1);
    }
}
