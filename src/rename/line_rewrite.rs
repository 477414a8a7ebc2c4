//! Rewriting a text file line by line, atomically: the new content goes to a temporary file in
//! the target's directory, which gets the original's mode and owner, is fsynced, renamed over
//! the target, and the directory fsynced. Readers see the old file or the new one, never a mix;
//! after a crash at most a `.opsi-backup-rename.*` temporary file is left beside it.
//!
//! Memory stays flat: one line at a time. The modification time becomes the time of the
//! rewrite, as for any edit (opsi does not interpret it).

use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::durable::sync_dir;
use crate::error::{Error, IoContext, Result};

/// What to do with one line (which includes its `\n`, if any).
pub enum LineEdit {
    Keep,
    Replace(Vec<u8>),
    Remove,
}

/// Streams `src` through `edit` into `dest` (which may be `src`; when it is not, `src` is removed
/// once `dest` is in place). Returns the number of lines replaced or removed. When that is 0
/// and `dest` is `src`, the file is left untouched.
pub fn rewrite_lines(
    src: &Path,
    dest: &Path,
    mut edit: impl FnMut(&[u8]) -> LineEdit,
) -> Result<usize> {
    let input = File::open(src).path_ctx("opening", src)?;
    let meta = input.metadata().path_ctx("reading metadata of", src)?;
    let dir = dest
        .parent()
        .ok_or_else(|| Error::Invalid(format!("{} has no directory", dest.display())))?;
    let temp = tempfile::Builder::new()
        .prefix(".opsi-backup-rename.")
        .tempfile_in(dir)
        .path_ctx("creating a temporary file in", dir)?;
    let mut reader = BufReader::new(input);
    let mut writer = BufWriter::new(temp);
    let mut line = Vec::new();
    let mut changed = 0;
    loop {
        line.clear();
        if reader
            .read_until(b'\n', &mut line)
            .path_ctx("reading", src)?
            == 0
        {
            break;
        }
        match edit(&line) {
            LineEdit::Keep => writer.write_all(&line),
            LineEdit::Replace(new) => {
                changed += 1;
                writer.write_all(&new)
            }
            LineEdit::Remove => {
                changed += 1;
                Ok(())
            }
        }
        .path_ctx("writing a temporary file for", dest)?;
    }
    if changed == 0 && src == dest {
        return Ok(0); // the temporary file is removed on drop
    }
    let temp = writer.into_inner().map_err(|e| {
        Error::io(
            format!("writing a temporary file for {}", dest.display()),
            e.into_error(),
        )
    })?;
    let file = temp.as_file();
    file.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))
        .path_ctx("setting the mode of a temporary file for", dest)?;
    let current = file
        .metadata()
        .path_ctx("reading metadata of a temporary file for", dest)?;
    if (current.uid(), current.gid()) != (meta.uid(), meta.gid()) {
        std::os::unix::fs::fchown(file, Some(meta.uid()), Some(meta.gid()))
            .path_ctx("giving the original owner to the rewritten", dest)?;
        // chown clears set-id bits: set the mode again.
        file.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))
            .path_ctx("setting the mode of a temporary file for", dest)?;
    }
    file.sync_all()
        .path_ctx("syncing a temporary file for", dest)?;
    temp.persist(dest)
        .map_err(|e| Error::io(format!("replacing {}", dest.display()), e.error))?;
    if src != dest {
        fs::remove_file(src).path_ctx("removing", src)?;
    }
    sync_dir(dir)?;
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_in_place_keeping_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.ini");
        fs::write(&path, "one\ntwo\nthree").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let n = rewrite_lines(&path, &path, |l| match l {
            b"two\n" => LineEdit::Remove,
            b"three" => LineEdit::Replace(b"3".to_vec()),
            _ => LineEdit::Keep,
        })
        .unwrap();
        assert_eq!(n, 2);
        assert_eq!(fs::read_to_string(&path).unwrap(), "one\n3");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o640);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn unchanged_file_is_not_touched_and_moves_are_done() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        fs::write(&a, "x\n").unwrap();
        let ino = fs::metadata(&a).unwrap().ino();
        assert_eq!(rewrite_lines(&a, &a, |_| LineEdit::Keep).unwrap(), 0);
        assert_eq!(fs::metadata(&a).unwrap().ino(), ino);
        let b = dir.path().join("b");
        rewrite_lines(&a, &b, |_| LineEdit::Keep).unwrap();
        assert!(!a.exists());
        assert_eq!(fs::read_to_string(&b).unwrap(), "x\n");
        assert!(crate::opsi::config_server::any_line(&b, |l| l == b"x\n").unwrap());
        assert!(!crate::opsi::config_server::any_line(&b, |l| l == b"y\n").unwrap());
    }
}
