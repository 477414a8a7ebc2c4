//! The credentials handed to `mysql`/`mysqldump` as `--defaults-file=/dev/fd/N`.
//!
//! Passwords on a command line are visible to every local user (`ps`, `/proc/*/cmdline`), and
//! a named file in a shared directory outlives a `kill -9` of the backup with the password in
//! it. So the option text lives in an anonymous memory file (`memfd_create`): it has no name
//! in any directory, it is gone when the last process holding it ends, and only the tool's
//! child inherits it (the descriptor is close-on-exec everywhere but in that child). Its
//! mode is 0600: the clients ignore a world-writable option file. Unlike the original (which
//! wraps values in `"` and refuses passwords containing `"`), values are escaped the way the
//! clients' option-file parser unescapes them, so any password works.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::error::{Error, IoContext, Result};

/// An in-memory option file holding a `[client]` group with `user` and `password`.
/// `[client]` is read by both `mysql` and `mysqldump` (the original writes one group per tool;
/// one shared group lets a single file serve a restore's two `mysql` runs).
pub struct DefaultsFile {
    file: File,
}

impl DefaultsFile {
    pub fn create(username: &str, password: &str) -> Result<DefaultsFile> {
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
        // SAFETY: a valid NUL-terminated name; the flags are plain bits.
        let raw = unsafe { libc::memfd_create(c"opsi-backup-mysql".as_ptr(), libc::MFD_CLOEXEC) };
        if raw < 0 {
            return Err(Error::io(
                "creating the in-memory MySQL option file (memfd_create)",
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: memfd_create returned a new descriptor that nothing else owns.
        let mut file = File::from(unsafe { OwnedFd::from_raw_fd(raw) });
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .ctx("making the MySQL option file private")?;
        let text = format!(
            "[client]\nuser = {}\npassword = {}\n",
            option_value(username),
            option_value(password)
        );
        file.write_all(text.as_bytes())
            .ctx("writing the MySQL option file")?;
        file.rewind().ctx("writing the MySQL option file")?;
        Ok(DefaultsFile { file })
    }

    /// `--defaults-file=/dev/fd/N`; the clients only honour it as their FIRST argument, and
    /// only in a child prepared by `hand_to`.
    pub fn arg(&self) -> OsString {
        format!("--defaults-file=/dev/fd/{}", self.file.as_raw_fd()).into()
    }

    /// Prepares `cmd` so that its child, and only it, inherits the option file, and dies with
    /// this process (`PR_SET_PDEATHSIG`): a backup killed with -9 leaves no mysqldump or mysql
    /// behind holding locks or the password. (The signal comes when the thread that spawned the
    /// child ends: spawn from a thread that outlives the child.)
    pub fn hand_to(&self, cmd: &mut Command) {
        let fd = self.file.as_raw_fd();
        let parent = std::process::id();
        // SAFETY: fcntl, prctl and getppid are async-signal-safe, as a pre_exec hook requires;
        // clearing FD_CLOEXEC changes the child's descriptor table only.
        unsafe {
            cmd.pre_exec(move || {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(io::Error::last_os_error());
                }
                // The backup died before prctl took effect: do not start.
                if libc::getppid() as u32 != parent {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
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
    fn private_in_memory_and_only_for_the_child() {
        let file = DefaultsFile::create("opsi", "pw").unwrap();
        let fd = file.file.as_raw_fd();
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
        assert!(
            link.to_string_lossy().starts_with("/memfd:"),
            "no name in a directory: {link:?}"
        );
        let mode = file.file.metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // SAFETY: reading the descriptor flags of our own open descriptor.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert_ne!(
            flags & libc::FD_CLOEXEC,
            0,
            "other children must not inherit it"
        );
        let arg = file.arg().into_string().unwrap();
        let path = arg.strip_prefix("--defaults-file=").unwrap();
        let mut cat = Command::new("cat");
        cat.arg(path);
        file.hand_to(&mut cat);
        let out = cat.output().unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "[client]\nuser = \"opsi\"\npassword = \"pw\"\n"
        );
        // A child not prepared by hand_to cannot read it.
        let out = Command::new("cat").arg(path).output().unwrap();
        assert!(!out.status.success());
        // Read a second time (a restore runs mysql twice): each open starts at the beginning.
        let mut cat = Command::new("cat");
        cat.arg(path);
        file.hand_to(&mut cat);
        assert!(cat.output().unwrap().stdout.starts_with(b"[client]"));
    }

    #[test]
    fn nul_refused_without_echo() {
        let err = DefaultsFile::create("u", "sec\0ret").err().unwrap();
        assert!(!err.to_string().contains("sec"));
    }
}
