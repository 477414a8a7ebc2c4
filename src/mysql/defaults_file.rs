//! The credentials file handed to `mysql`/`mysqldump` as `--defaults-file=`.
//!
//! Passwords on a command line are visible to every local user (`ps`, `/proc/*/cmdline`), so,
//! like the original, we write user and password to a private temporary option file. Unlike
//! the original (which wraps values in `"` and refuses passwords containing `"`), values are
//! escaped the way the clients' option-file parser unescapes them, so any password works.
//! The file is removed when the guard drops, i.e. on every way out, errors and panics included.

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;

use crate::error::{Error, IoContext, Result};

/// A private (0600) option file holding a `[client]` group with `user` and `password`.
/// `[client]` is read by both `mysql` and `mysqldump` (the original writes one group per tool;
/// one shared group lets a single file serve a restore's two `mysql` runs).
pub struct DefaultsFile {
    // TempPath deletes the file on drop.
    path: tempfile::TempPath,
}

impl DefaultsFile {
    /// Writes the file in the system temporary directory.
    pub fn create(username: &str, password: &str) -> Result<DefaultsFile> {
        DefaultsFile::create_in(&std::env::temp_dir(), username, password)
    }

    /// Writes the file in `dir`. tempfile creates it with mode 0600 and `O_EXCL`, so no other
    /// user can read it or race us to the name.
    pub fn create_in(dir: &Path, username: &str, password: &str) -> Result<DefaultsFile> {
        // The clients read option values as C strings: a NUL would silently cut them short.
        // Never echo the values themselves.
        if username.contains('\0') {
            return Err(Error::Invalid(
                "the MySQL user name contains a NUL character".into(),
            ));
        }
        if password.contains('\0') {
            return Err(Error::Invalid(
                "the MySQL password contains a NUL character".into(),
            ));
        }
        let mut file = tempfile::Builder::new()
            .prefix("opsi-backup-mysql-")
            .suffix(".cnf")
            .tempfile_in(dir)
            .path_ctx("creating MySQL defaults file in", dir)?;
        let text = format!(
            "[client]\nuser = {}\npassword = {}\n",
            option_value(username),
            option_value(password)
        );
        file.write_all(text.as_bytes())
            .ctx("writing MySQL defaults file")?;
        file.flush().ctx("writing MySQL defaults file")?;
        Ok(DefaultsFile {
            path: file.into_temp_path(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `--defaults-file=<path>`; the clients only honour it as their FIRST argument.
    pub fn arg(&self) -> OsString {
        let mut arg = OsString::from("--defaults-file=");
        arg.push(self.path.as_os_str());
        arg
    }
}

/// Encodes a value for a MySQL/MariaDB option file.
///
/// The parser (mysys `my_default.c`) trims blanks around the value, strips one pair of
/// matching surrounding quotes, cuts at a `#` outside quotes, then turns `\\`, `\"`, `\'`,
/// `\n`, `\r`, `\t`, `\b`, `\s` into their characters. So: wrap in `"` (keeps blanks and `#`),
/// and escape the backslash, the quote and the control characters that would end the line.
fn option_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn escapes_what_the_parser_unescapes() {
        assert_eq!(option_value("plain"), r#""plain""#);
        assert_eq!(option_value(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(option_value(" #x' "), r#"" #x' ""#);
        assert_eq!(option_value("l1\nl2\t"), r#""l1\nl2\t""#);
        assert_eq!(option_value("end\\"), r#""end\\""#);
        assert_eq!(option_value(""), r#""""#);
    }

    #[test]
    fn private_and_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let file = DefaultsFile::create_in(dir.path(), "opsi", "pw").unwrap();
        let path = file.path().to_path_buf();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "[client]\nuser = \"opsi\"\npassword = \"pw\"\n");
        assert!(file
            .arg()
            .to_string_lossy()
            .starts_with("--defaults-file=/"));
        drop(file);
        assert!(!path.exists());
    }

    #[test]
    fn nul_refused_without_echo() {
        let dir = tempfile::tempdir().unwrap();
        let err = DefaultsFile::create_in(dir.path(), "u", "sec\0ret")
            .err()
            .unwrap();
        assert!(!err.to_string().contains("sec"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
