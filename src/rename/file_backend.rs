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
use crate::rename::line_rewrite::{any_line, rewrite_lines, LineEdit};
use crate::rename::replacer::{dedupe_json_list, replace_url_host, IdReplacer};
use crate::rename::server_id::validate_server_id;
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

/// Lower-cased ids of the depots (and the config server) of the file backend at `base_dir`:
/// its `depots/*.ini` files. `opsi::data_dirs` finds the config server's data directories by
/// them and [`find_config_server`], the same rule `--new-server-id` uses.
pub fn depot_ids(base_dir: &Path) -> Result<Vec<String>> {
    host_ids(&base_dir.join("depots"), "ini")
}

/// The config server of the file backend at `base_dir`, among `depots` (ids of `depots/*.ini`):
/// 1. the depot whose id is `local_fqdn` (python-opsi's file backend rule), unless that is
///    `new` itself;
/// 2. else the depot named by the default of `clientconfig.configserver.url` in `config.ini`
///    (the data's own record of its config server), unless that is `new`;
/// 3. else the only depot.
///
/// Python's restore stops after 1 and 3 ("No config server found in backend"); 2 lets a backup
/// be restored on a machine with another name, which is the point of `--new-server-id`.
pub fn find_config_server(
    base_dir: &Path,
    depots: &[String],
    local_fqdn: Option<&str>,
    new: &str,
) -> Result<String> {
    let fqdn = local_fqdn.and_then(|f| validate_server_id(f).ok());
    if let Some(fqdn) = fqdn.filter(|f| f != new && depots.contains(f)) {
        return Ok(fqdn);
    }
    if let Some(id) = configserver_url_host(&base_dir.join("config.ini"))? {
        if id != new && depots.contains(&id) {
            return Ok(id);
        }
    }
    match depots {
        [only] => Ok(only.clone()),
        _ => Err(Error::Invalid(format!(
            "cannot tell which depot of {} is the config server (depots: {}); name it explicitly",
            base_dir.display(),
            if depots.is_empty() {
                "none".to_string()
            } else {
                depots.join(", ")
            }
        ))),
    }
}

/// The host of the first default value of `clientconfig.configserver.url`, lower-cased.
fn configserver_url_host(config_ini: &Path) -> Result<Option<String>> {
    if !config_ini.is_file() {
        return Ok(None);
    }
    let mut section = String::new();
    let mut found = None;
    any_line(config_ini, |line| {
        if let Some(name) = section_name(line) {
            section = name;
            return false;
        }
        if !section.eq_ignore_ascii_case("clientconfig.configserver.url") {
            return false;
        }
        let Some((key, value)) = split_option(line) else {
            return false;
        };
        if !key.eq_ignore_ascii_case("defaultvalues") {
            return false;
        }
        let urls: Vec<String> = serde_json::from_str(value.trim()).unwrap_or_default();
        found = urls.first().and_then(|u| url_host(u));
        true
    })?;
    Ok(found)
}

fn url_host(url: &str) -> Option<String> {
    let rest = &url[url.find("://")? + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host = &authority[authority.rfind('@').map_or(0, |p| p + 1)..];
    let host = host.split(':').next().unwrap_or(host);
    validate_server_id(host).ok()
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

/// `[name]` → `name`.
fn section_name(line: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(line).ok()?.trim();
    let name = text.strip_prefix('[')?.strip_suffix(']')?;
    Some(name.trim().to_string())
}

/// Byte offset of an option's value: after the first `=` or `:` (ConfigParser's delimiters).
fn value_start(text: &str) -> Option<usize> {
    let trimmed = text.trim_start();
    if trimmed.is_empty() || trimmed.starts_with(['[', '#', ';']) {
        return None;
    }
    text.find(['=', ':']).map(|p| p + 1)
}

/// `key = value` → (key, value), for option lines only.
fn split_option(line: &[u8]) -> Option<(&str, &str)> {
    let text = std::str::from_utf8(line).ok()?;
    let at = value_start(text)?;
    Some((text[..at - 1].trim(), &text[at..]))
}

fn short_name(id: &str) -> &str {
    id.split('.').next().unwrap_or(id)
}

/// Lower-cased ids of the `*.<ext>` files in `dir` whose name is a valid host id (the file
/// backend ignores the others). A missing directory has none.
fn host_ids(dir: &Path, ext: &str) -> Result<Vec<String>> {
    let mut ids: Vec<String> = list_host_files(dir, ext)?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    ids.sort();
    Ok(ids)
}

fn host_file(dir: &Path, ext: &str, id: &str) -> Result<Option<PathBuf>> {
    Ok(list_host_files(dir, ext)?
        .into_iter()
        .find(|(found, _)| found == id)
        .map(|(_, path)| path))
}

fn list_host_files(dir: &Path, ext: &str) -> Result<Vec<(String, PathBuf)>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.path_ctx("listing", dir)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((stem, e)) = name.rsplit_once('.') else {
            continue;
        };
        if !e.eq_ignore_ascii_case(ext) || !entry.path().is_file() {
            continue;
        }
        if let Ok(id) = validate_server_id(stem) {
            found.push((id, entry.path()));
        }
    }
    Ok(found)
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
        assert_eq!(
            url_host("https://OPSI.example.org:4447/rpc").as_deref(),
            Some("opsi.example.org")
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
