//! Which host of a file backend is the config server, and the file backend's host files
//! (`depots/<id>.ini`, `clients/<id>.ini`, ...): knowledge that `--new-server-id` (rename)
//! and the bulk data's paths (`data_dirs`) share. Also the few INI line readers both use.

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::opsi::host_id::validate_server_id;

/// Whether any line of `path` satisfies `pred` (read until one does: rename's pre-scan, so
/// that files without a reference are never rewritten, and the search for one option).
pub(crate) fn any_line(path: &Path, mut pred: impl FnMut(&[u8]) -> bool) -> Result<bool> {
    let mut reader = BufReader::new(File::open(path).path_ctx("opening", path)?);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader
            .read_until(b'\n', &mut line)
            .path_ctx("reading", path)?
            == 0
        {
            return Ok(false);
        }
        if pred(&line) {
            return Ok(true);
        }
    }
}

/// Lower-cased ids of the depots (and the config server) of the file backend at `base_dir`:
/// its `depots/*.ini` files. `opsi::data_dirs` finds the config server's data directories by
/// them and [`find_config_server`], the rule `--new-server-id` uses too.
pub(crate) fn depot_ids(base_dir: &Path) -> Result<Vec<String>> {
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

/// `[name]` → `name`.
pub(crate) fn section_name(line: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(line).ok()?.trim();
    let name = text.strip_prefix('[')?.strip_suffix(']')?;
    Some(name.trim().to_string())
}

/// Byte offset of an option's value: after the first `=` or `:` (ConfigParser's delimiters).
pub(crate) fn value_start(text: &str) -> Option<usize> {
    let trimmed = text.trim_start();
    if trimmed.is_empty() || trimmed.starts_with(['[', '#', ';']) {
        return None;
    }
    text.find(['=', ':']).map(|p| p + 1)
}

/// `key = value` → (key, value), for option lines only.
pub(crate) fn split_option(line: &[u8]) -> Option<(&str, &str)> {
    let text = std::str::from_utf8(line).ok()?;
    let at = value_start(text)?;
    Some((text[..at - 1].trim(), &text[at..]))
}

/// Lower-cased ids of the `*.<ext>` files in `dir` whose name is a valid host id (the file
/// backend ignores the others). A missing directory has none.
pub(crate) fn host_ids(dir: &Path, ext: &str) -> Result<Vec<String>> {
    let mut ids: Vec<String> = list_host_files(dir, ext)?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    ids.sort();
    Ok(ids)
}

pub(crate) fn host_file(dir: &Path, ext: &str, id: &str) -> Result<Option<PathBuf>> {
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
    fn url_hosts_are_host_ids() {
        assert_eq!(
            url_host("https://OPSI.example.org:4447/rpc").as_deref(),
            Some("opsi.example.org")
        );
        assert_eq!(
            url_host("https://user@opsi.example.org/rpc").as_deref(),
            Some("opsi.example.org")
        );
        assert_eq!(url_host("no url"), None);
    }
}
