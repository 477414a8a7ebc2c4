//! A bulk data file's extended attributes, POSIX ACLs among them, as the kernel lists them
//! (through the `xattr` crate: safe wrappers over `llistxattr`/`lgetxattr` that never follow a
//! symlink, maintained, and already what the `tar` crate relies on). A file system without
//! extended attributes gives none; an attribute that cannot be read is left out with a
//! warning, never failing the backup.

use std::io::ErrorKind;
use std::path::Path;

use crate::logging;
use crate::member::Xattr;

/// `path`'s extended attributes, sorted by name (so an unchanged file gives an equal record).
pub(crate) fn read(path: &Path) -> Vec<Xattr> {
    let names = match xattr::list(path) {
        Ok(n) => n,
        Err(e) if unsupported(&e) => return Vec::new(),
        Err(e) => {
            logging::warning(format!(
                "cannot list the extended attributes of {}: {e}",
                path.display()
            ));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for name in names {
        let Some(text) = name.to_str() else {
            logging::warning(format!(
                "{}: skipping extended attribute {name:?}: its name is not valid UTF-8",
                path.display()
            ));
            continue;
        };
        match xattr::get(path, &name) {
            Ok(Some(value)) => out.push(Xattr {
                name: text.to_string(),
                value,
            }),
            Ok(None) => {} // removed since it was listed
            Err(e) => logging::warning(format!(
                "{}: cannot read extended attribute {text}: {e}",
                path.display()
            )),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The file system (or kernel) has no extended attributes at all.
pub(crate) fn unsupported(e: &std::io::Error) -> bool {
    e.kind() == ErrorKind::Unsupported
        || matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::ENOSYS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_was_set_sorted() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        xattr::set(&f, "user.zeta", b"2").unwrap();
        xattr::set(&f, "user.alpha", b"\x00\xff").unwrap();
        let got = read(&f);
        let names: Vec<_> = got.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["user.alpha", "user.zeta"]);
        assert_eq!(got[0].value, b"\x00\xff");
        assert!(read(&d.path().join("missing")).is_empty());
    }
}
