//! `LocalDir`: the repository as a directory on a local file system, as the spec lays it out
//! (section "Directory layout"). A key is a path below the directory. Publishing is the
//! spec's durable write: the bytes go to a file under `tmp/`, which is fsynced, renamed to
//! its key, and the directory now holding it fsynced (section "Durability and permissions").

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{IoContext, Result};
use crate::store::storage::{Object, ObjectInfo, Storage, TempFile};
use crate::store::{crash_point, durable};

/// A repository directory.
pub(crate) struct LocalDir {
    root: PathBuf,
    /// Directories that lost an entry since their last fsync (`flush_removals`).
    removed_from: Mutex<BTreeSet<PathBuf>>,
}

impl LocalDir {
    pub(crate) fn new(root: &Path) -> LocalDir {
        LocalDir {
            root: root.to_path_buf(),
            removed_from: Mutex::new(BTreeSet::new()),
        }
    }

    /// Creates the directories of the layout that are missing (`packs/`, `snapshots/`,
    /// `tmp/`; `state/` comes with its first record), 0700.
    pub(crate) fn create_dirs(&self) -> Result<()> {
        for sub in ["packs", "snapshots", "tmp"] {
            durable::create_dir(&self.root.join(sub))?;
        }
        Ok(())
    }

    fn path(&self, key: &str) -> PathBuf {
        debug_assert!(
            !key.starts_with('/') && !key.split('/').any(|p| p == ".." || p.is_empty()),
            "bad key {key:?}"
        );
        self.root.join(key)
    }

    /// Creates `dir` (0700) and the missing directories above it, each made durable by an
    /// fsync of the directory holding it.
    fn ensure_dir(&self, dir: &Path) -> Result<()> {
        let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.is_dir()).collect();
        if missing.is_empty() {
            return Ok(());
        }
        durable::create_dir(dir)?;
        for d in missing.iter().rev() {
            if let Some(parent) = d.parent().filter(|p| !p.as_os_str().is_empty()) {
                durable::sync_dir(parent)?;
            }
        }
        Ok(())
    }

    /// Renames the fsynced `from` to `key` and fsyncs the directory holding it.
    fn publish(&self, from: &Path, key: &str) -> Result<()> {
        let to = self.path(key);
        let dir = to.parent().expect("a key has a directory");
        self.ensure_dir(dir)?;
        fs::rename(from, &to).path_ctx("renaming into place", &to)?;
        durable::sync_dir(dir)
    }
}

impl Storage for LocalDir {
    fn show(&self, key: &str) -> String {
        self.path(key).display().to_string()
    }

    fn create_temp(&self, prefix: &str) -> Result<TempFile> {
        let tmp = self.root.join("tmp");
        let path = tmp.join(durable::temp_name(prefix)?);
        let file = match durable::create_new(&path) {
            Ok(f) => f,
            Err(_) if !tmp.is_dir() => {
                self.ensure_dir(&tmp)?;
                durable::create_new(&path)?
            }
            Err(e) => return Err(e),
        };
        Ok(TempFile { path, file })
    }

    fn put_new(&self, key: &str, tmp: TempFile, crash: &str) -> Result<()> {
        tmp.file.sync_all().path_ctx("syncing", &tmp.path)?;
        drop(tmp.file);
        crash_point(&format!("{crash}-synced"));
        self.publish(&tmp.path, key)
    }

    fn replace(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let name = key.rsplit('/').next().expect("a key has a name");
        let mut tmp = self.create_temp(name)?;
        let written = tmp
            .file
            .write_all(bytes)
            .and_then(|()| tmp.file.sync_all())
            .path_ctx("writing", &tmp.path)
            .and_then(|()| self.publish(&tmp.path, key));
        if written.is_err() {
            tmp.discard();
        }
        written
    }

    fn open(&self, key: &str) -> io::Result<Box<dyn Object>> {
        Ok(Box::new(LocalObject::open(&self.path(key))?))
    }

    fn stat(&self, key: &str) -> io::Result<Option<ObjectInfo>> {
        match fs::metadata(self.path(key)) {
            Ok(m) => Ok(Some(ObjectInfo {
                size: m.len(),
                modified: m.modified().ok(),
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        debug_assert!(prefix.ends_with('/'), "a prefix is a folder: {prefix:?}");
        let mut keys = Vec::new();
        let top = self.path(prefix.trim_end_matches('/'));
        match fs::read_dir(&top) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(keys),
            r => walk(r, &top, prefix, &mut keys)?,
        }
        keys.sort();
        Ok(keys)
    }

    fn remove(&self, key: &str) -> Result<bool> {
        let path = self.path(key);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => {
                return Err(crate::error::Error::io(
                    format!("removing {}", path.display()),
                    e,
                ))
            }
        }
        let dir = path.parent().expect("a key has a directory").to_path_buf();
        self.removed_from
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(dir);
        Ok(true)
    }

    fn flush_removals(&self, prefix: &str) -> Result<()> {
        let under = self.path(prefix.trim_end_matches('/'));
        let dirs: Vec<PathBuf> = {
            let mut all = self.removed_from.lock().unwrap_or_else(|p| p.into_inner());
            let mine: Vec<PathBuf> = all
                .iter()
                .filter(|d| d.starts_with(&under))
                .cloned()
                .collect();
            for d in &mine {
                all.remove(d);
            }
            mine
        };
        for d in dirs {
            durable::sync_dir(&d)?;
        }
        Ok(())
    }

    fn clean_temp(&self) -> Result<u64> {
        let tmp = self.root.join("tmp");
        let mut removed = 0;
        for entry in fs::read_dir(&tmp).path_ctx("listing", &tmp)? {
            let path = entry.path_ctx("listing", &tmp)?.path();
            fs::remove_file(&path).path_ctx("removing leftover", &path)?;
            removed += 1;
        }
        Ok(removed)
    }
}

/// Adds the files below the directory `dir` (listed as `entries`), whose keys start with
/// `prefix`, to `keys`. Names that are not UTF-8 are no keys and are left out.
fn walk(
    entries: io::Result<fs::ReadDir>,
    dir: &Path,
    prefix: &str,
    keys: &mut Vec<String>,
) -> Result<()> {
    for e in entries.path_ctx("listing", dir)? {
        let e = e.path_ctx("listing", dir)?;
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let path = e.path();
        if path.is_dir() {
            walk(
                fs::read_dir(&path),
                &path,
                &format!("{prefix}{name}/"),
                keys,
            )?;
        } else {
            keys.push(format!("{prefix}{name}"));
        }
    }
    Ok(())
}

/// An open local file; reads with `pread`, so one handle serves any offset.
pub(crate) struct LocalObject {
    file: File,
    size: u64,
}

impl LocalObject {
    pub(crate) fn open(path: &Path) -> io::Result<LocalObject> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        Ok(LocalObject { file, size })
    }
}

impl Object for LocalObject {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::store::storage::ObjectReader;

    fn dir() -> (tempfile::TempDir, LocalDir) {
        let d = tempfile::tempdir().unwrap();
        let s = LocalDir::new(d.path());
        (d, s)
    }

    fn put(s: &LocalDir, key: &str, bytes: &[u8]) {
        let mut t = s.create_temp("test").unwrap();
        t.file.write_all(bytes).unwrap();
        s.put_new(key, t, "test").unwrap();
    }

    #[test]
    fn put_new_publishes_the_whole_file_and_nothing_else() {
        let (d, s) = dir();
        assert!(!s.exists("packs/ab/x.pack").unwrap());
        put(&s, "packs/ab/x.pack", b"0123456789");
        assert!(s.exists("packs/ab/x.pack").unwrap());
        assert_eq!(s.stat("packs/ab/x.pack").unwrap().unwrap().size, 10);
        assert_eq!(
            fs::read(d.path().join("packs/ab/x.pack")).unwrap(),
            b"0123456789"
        );
        assert_eq!(fs::read_dir(d.path().join("tmp")).unwrap().count(), 0);
        // The same key again (content-addressed: the same bytes) is no error.
        put(&s, "packs/ab/x.pack", b"0123456789");
        assert_eq!(s.list("packs/").unwrap(), ["packs/ab/x.pack"]);
    }

    #[test]
    fn a_failed_publish_leaves_no_key() {
        let (d, s) = dir();
        // The key's directory cannot be made: a file stands where it would go.
        fs::write(d.path().join("packs"), b"not a directory").unwrap();
        let mut t = s.create_temp("pack").unwrap();
        t.file.write_all(b"half").unwrap();
        let tmp = t.path.clone();
        assert!(s.put_new("packs/ab/x.pack", t, "test").is_err());
        assert!(!d.path().join("packs/ab/x.pack").exists());
        // What stays is the temporary file, which recovery deletes.
        assert!(tmp.exists());
        assert_eq!(s.clean_temp().unwrap(), 1);
        assert!(!tmp.exists());
        fs::remove_file(d.path().join("packs")).unwrap();
        assert!(s.list("packs/").unwrap().is_empty());
        // A replace that fails leaves the old bytes and no temporary file.
        s.replace("state/a.json", b"old").unwrap();
        fs::create_dir(d.path().join("state/b.json")).unwrap();
        fs::write(d.path().join("state/b.json/inside"), b"").unwrap();
        assert!(s.replace("state/b.json", b"new").is_err());
        assert_eq!(fs::read_dir(d.path().join("tmp")).unwrap().count(), 0);
        assert_eq!(s.read_small("state/a.json", 10).unwrap().unwrap(), b"old");
    }

    #[test]
    fn list_remove_and_exists() {
        let (d, s) = dir();
        put(&s, "packs/cd/2.pack", b"b");
        put(&s, "packs/ab/1.pack", b"a");
        put(&s, "snapshots/9.snap", b"c");
        assert_eq!(
            s.list("packs/").unwrap(),
            ["packs/ab/1.pack", "packs/cd/2.pack"]
        );
        assert_eq!(s.list("snapshots/").unwrap(), ["snapshots/9.snap"]);
        assert!(s.list("state/").unwrap().is_empty(), "nothing there");
        assert!(s.remove("packs/ab/1.pack").unwrap());
        assert!(!s.remove("packs/ab/1.pack").unwrap(), "gone already");
        assert!(!s.exists("packs/ab/1.pack").unwrap());
        s.flush_removals("packs/").unwrap();
        assert!(s.removed_from.lock().unwrap().is_empty());
        assert_eq!(s.list("packs/").unwrap(), ["packs/cd/2.pack"]);
        assert!(d.path().join("packs/ab").is_dir(), "directories stay");
    }

    #[test]
    fn ranged_reads() {
        let (_d, s) = dir();
        let bytes: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
        put(&s, "packs/ab/r.pack", &bytes);
        let o = s.open("packs/ab/r.pack").unwrap();
        assert_eq!(o.size(), 100_000);
        let mut buf = [0u8; 300];
        o.read_exact_at(&mut buf, 70_000).unwrap();
        assert_eq!(buf[..], bytes[70_000..70_300]);
        let mut tail = [0u8; 10];
        let e = o.read_exact_at(&mut tail, 99_995).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        let mut all = Vec::new();
        ObjectReader::new(&*o).read_to_end(&mut all).unwrap();
        assert_eq!(all, bytes);
        let e = s.open("packs/ab/none.pack").err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn replace_changes_config_and_state() {
        let (d, s) = dir();
        assert_eq!(s.read_small("config.json", 100).unwrap(), None);
        s.replace("config.json", b"{1}").unwrap();
        s.replace("config.json", b"{22}").unwrap();
        assert_eq!(s.read_small("config.json", 100).unwrap().unwrap(), b"{22}");
        s.replace("state/last-verify.json", b"x").unwrap();
        assert_eq!(
            s.read_small("state/last-verify.json", 1).unwrap().unwrap(),
            b"x"
        );
        let e = s.read_small("config.json", 3).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_eq!(fs::read_dir(d.path().join("tmp")).unwrap().count(), 0);
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &str| fs::metadata(d.path().join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("state"), 0o700);
        assert_eq!(mode("state/last-verify.json"), 0o600);
        assert_eq!(mode("config.json"), 0o600);
    }
}
