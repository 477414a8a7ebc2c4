//! The restore sink: routes each member to its target (a staged tree, a single file, or a
//! stream consumer such as the mysql client), and swaps everything in only in `commit`. The
//! members come from a verified replay (`backup.rs`): a file whose bytes differ from the
//! verified ones fails its `add`, so a restore that meets one never reaches `commit`.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::error::{Error, IoContext, Result};
use crate::logging;
use crate::member::{Member, MemberKind};
use crate::restore::meta::MetaApplier;
use crate::restore::safe_path;
use crate::restore::staging::{stage_file, StagedTree};
use crate::restore::swap::{swap_all, Pending};
use crate::restore::writers::Writers;
use crate::sink::MemberSink;

/// Consumes one member's verified bytes (e.g. feeds a dump to the mysql client).
pub(crate) type StreamConsumer = Box<dyn FnMut(&mut dyn Read) -> Result<()>>;

pub(crate) enum Dest {
    /// Every member below the prefix rebuilds the directory tree at this path.
    Tree(PathBuf),
    /// The regular file(s) directly below the prefix become this file (dhcpd.conf, pckeys).
    File(PathBuf),
    /// The member exactly at the prefix path is streamed to a consumer.
    Stream(StreamConsumer),
}

pub(crate) struct Target {
    pub prefix: String,
    /// What decided the destination, for messages (e.g. "`baseDir` '/x' of backend file in
    /// <archive>:CONTENT/CONF/backends/file.conf").
    pub what: String,
    pub dest: Dest,
}

enum Active {
    Tree(StagedTree),
    File {
        dest: PathBuf,
        /// Verified bytes in an unnamed temporary file: nothing to clean up after a kill.
        staged: Option<(std::fs::File, Member)>,
    },
    Stream(StreamConsumer),
}

pub(crate) struct Restorer {
    /// The threads writing the files of staged trees, started with the first such file.
    /// Declared first, so dropped first: a failed restore stops its writers before its
    /// staging directories are removed.
    writers: Option<Writers>,
    targets: Vec<(String, Active)>,
    meta: MetaApplier,
    pub files_restored: u64,
}

impl Restorer {
    pub(crate) fn new(targets: Vec<Target>) -> Result<Restorer> {
        let mut active = Vec::new();
        for t in targets {
            let a = match t.dest {
                Dest::Tree(p) => Active::Tree(StagedTree::new(&p)?),
                Dest::File(p) => Active::File {
                    dest: p,
                    staged: None,
                },
                Dest::Stream(c) => Active::Stream(c),
            };
            active.push((t.prefix, a));
        }
        Ok(Restorer {
            writers: None,
            targets: active,
            meta: MetaApplier::new(),
            files_restored: 0,
        })
    }

    /// Makes every staged part live, all or nothing (`swap.rs`). A single file that lies inside
    /// a restored tree (pckeys in /etc/opsi) is placed into that tree's staging first, so the
    /// swapped-in tree is complete and its directories keep their restored mtimes. Every tree
    /// is sealed (its symlinks checked) and every other file staged before the first swap.
    pub(crate) fn commit(mut self) -> Result<()> {
        if let Some(w) = &mut self.writers {
            w.finish()?;
        }
        let mut files = Vec::new();
        let mut trees = Vec::new();
        for (_, a) in self.targets.drain(..) {
            match a {
                Active::Tree(t) => trees.push(t),
                Active::File {
                    dest,
                    staged: Some(s),
                } => files.push((dest, s)),
                _ => {}
            }
        }
        let mut outside = Vec::new();
        for (dest, (mut tmp, m)) in files {
            tmp.rewind().ctx("rereading staged file")?;
            match trees
                .iter_mut()
                .find(|t| dest.starts_with(&t.dest) && dest != t.dest)
            {
                Some(tree) => {
                    let rel = dest
                        .strip_prefix(&tree.dest)
                        .expect("checked by starts_with")
                        .to_path_buf();
                    tree.replace_file(&m, &rel, &mut tmp, &mut self.meta)?;
                }
                None => outside.push((dest, tmp, m)),
            }
        }
        for t in &mut trees {
            t.seal(&mut self.meta)?;
        }
        let lost = self.meta.xattr_failures.load(Ordering::Relaxed);
        if lost > crate::restore::xattrs::NAMED_WARNINGS {
            logging::warning(format!(
                "{lost} files in all could not get their extended attributes back \
                 (the first {} are named above)",
                crate::restore::xattrs::NAMED_WARNINGS
            ));
        }
        let mut pending: Vec<Pending> = Vec::new();
        for (dest, mut tmp, m) in outside {
            match stage_file(&dest, &mut tmp, &m, &mut self.meta) {
                Ok(p) => pending.push(p),
                Err(e) => {
                    for p in &pending {
                        let _ = crate::leftovers::remove_any(&p.staged);
                    }
                    return Err(e);
                }
            }
        }
        let mut all: Vec<Pending> = trees.into_iter().map(StagedTree::into_pending).collect();
        all.append(&mut pending);
        crate::fail_points::crash_point("restore-staged");
        swap_all(all, |dest| {
            logging::notice(format!("Restored {}", dest.display()))
        })
    }
}

impl Restorer {
    /// The target that member `path` belongs to.
    fn target_of(&self, path: &str) -> Option<usize> {
        self.targets.iter().position(|(prefix, _)| {
            path == prefix
                || path
                    .strip_prefix(prefix.as_str())
                    .is_some_and(|r| r.starts_with('/'))
        })
    }
}

impl MemberSink for Restorer {
    /// A member left unread is fine unless it belongs to a target: then the replay's scope
    /// was narrower than the plan, and the restore would be incomplete.
    fn pass_over(&mut self, m: &Member) -> Result<()> {
        match self.target_of(&m.path) {
            None => Ok(()),
            Some(i) => Err(Error::Invalid(format!(
                "{}: left unread by the replay, yet restored to {}",
                m.path, self.targets[i].0
            ))),
        }
    }

    fn add(&mut self, m: &Member, content: &mut dyn Read) -> Result<()> {
        let Some(idx) = self.target_of(&m.path) else {
            return Ok(());
        };
        let prefix = self.targets[idx].0.clone();
        let rel = safe_path::below(&m.path, &prefix)?.unwrap_or_default();
        match &mut self.targets[idx].1 {
            Active::Tree(tree) => {
                if self.writers.is_none() && m.kind == MemberKind::File {
                    self.writers = Some(Writers::new(Arc::clone(&self.meta.xattr_failures))?);
                }
                let mut to = Staging {
                    tree,
                    meta: &mut self.meta,
                    writers: self.writers.as_mut(),
                };
                if restore_tree_member(&mut to, &prefix, m, &rel, content)? {
                    self.files_restored += 1;
                }
                Ok(())
            }
            Active::File { dest, staged } => {
                if m.kind == MemberKind::Dir {
                    return Ok(());
                }
                if m.kind != MemberKind::File || rel.components().count() != 1 {
                    return Err(Error::UnsafePath(format!(
                        "{}: unexpected member for {}",
                        m.path,
                        dest.display()
                    )));
                }
                let mut tmp = tempfile::tempfile().ctx("creating a staging file")?;
                std::io::copy(content, &mut tmp)
                    .map_err(|e| Error::Corrupt(format!("{}: {e}", m.path)))?;
                tmp.flush().ctx("writing staging file")?;
                *staged = Some((tmp, m.clone()));
                self.files_restored += 1;
                Ok(())
            }
            Active::Stream(consumer) => {
                if m.kind != MemberKind::File || !rel.as_os_str().is_empty() {
                    return Ok(());
                }
                consumer(content)?;
                // Read to the end, so that the replay checks the whole member.
                std::io::copy(content, &mut std::io::sink())
                    .map_err(|e| Error::Corrupt(format!("{}: {e}", m.path)))?;
                self.files_restored += 1;
                Ok(())
            }
        }
    }
}

/// Where a member of a tree goes: the staged tree, and the writers for its files (none only
/// before the first file).
struct Staging<'a> {
    tree: &'a mut StagedTree,
    meta: &'a mut MetaApplier,
    writers: Option<&'a mut Writers>,
}

/// Restores one member into a staged tree; true for a regular file.
fn restore_tree_member(
    st: &mut Staging<'_>,
    prefix: &str,
    m: &Member,
    rel: &Path,
    content: &mut dyn Read,
) -> Result<bool> {
    let (tree, meta) = (&mut *st.tree, &mut *st.meta);
    match &m.kind {
        MemberKind::Dir => tree.dir(m, rel).map(|_| false),
        MemberKind::File => {
            if rel.as_os_str().is_empty() {
                return Err(Error::UnsafePath(format!(
                    "{}: a file where a directory is expected",
                    m.path
                )));
            }
            let path = tree.place(&m.path, rel)?;
            let owner = meta.owner(m);
            match st.writers.as_deref_mut() {
                Some(w) => w.write_file(path, m, owner, content)?,
                None => return Err(Error::Invalid("no writer for a file".into())),
            }
            Ok(true)
        }
        MemberKind::Symlink(target) => {
            safe_path::check_symlink(&m.path, rel, target)?;
            let p = tree.symlink(m, rel, target)?;
            meta.apply(&p, m, true)?;
            Ok(false)
        }
        MemberKind::Hardlink(to) => {
            let to_rel = safe_path::below(to, prefix).map_err(|e| {
                Error::UnsafePath(format!("{}: hard link to {to} refused: {e}", m.path))
            })?;
            let Some(to_rel) = to_rel else {
                return Err(Error::UnsafePath(format!(
                    "{}: hard link to {to} outside the restored tree",
                    m.path
                )));
            };
            tree.hardlink(m, rel, &to_rel, st.writers.as_deref())
                .map(|_| false)
        }
        MemberKind::Other(t) => {
            logging::warning(format!(
                "{}: skipping member of tar type '{}'",
                m.path, *t as char
            ));
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depot_restorer(dest: &Path) -> Restorer {
        Restorer::new(vec![Target {
            prefix: "DATA/DEPOT".into(),
            what: "the depot".into(),
            dest: Dest::Tree(dest.to_path_buf()),
        }])
        .unwrap()
    }

    fn link(path: &str, to: &str) -> Member {
        Member {
            kind: MemberKind::Hardlink(to.into()),
            ..Member::control(path, 0)
        }
    }

    #[test]
    fn hard_links_outside_the_tree_or_to_nothing_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("depot");
        for (to, why) in [
            ("../../etc/shadow", "outside the restored tree"),
            ("DATA/DEPOT/x/../../../etc/shadow", "'..'"),
            ("/etc/shadow", "outside the restored tree"),
            ("DATA/WORKBENCH/a", "outside the restored tree"),
            ("DATA/DEPOT/later", "not restored"),
        ] {
            let mut r = depot_restorer(&dest);
            let e = r
                .add(&link("DATA/DEPOT/x/evil", to), &mut std::io::empty())
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(why) && e.contains("DATA/DEPOT/x/evil"),
                "{to}: {e}"
            );
        }
        // A link to a file restored before it is made, as one inode.
        let mut r = depot_restorer(&dest);
        let file = Member {
            mode: 0o644,
            ..Member::control("DATA/DEPOT/p/a", 2)
        };
        r.add(&file, &mut &b"hi"[..]).unwrap();
        r.add(
            &link("DATA/DEPOT/p/b", "DATA/DEPOT/p/a"),
            &mut std::io::empty(),
        )
        .unwrap();
        r.commit().unwrap();
        use std::os::unix::fs::MetadataExt;
        let ino = |p: &str| std::fs::metadata(dest.join(p)).unwrap().ino();
        assert_eq!(ino("p/a"), ino("p/b"));
        assert!(!tmp.path().join("etc").exists());
    }

    /// An attribute the file system refuses (here a namespace no Linux file system has, as
    /// a disk without extended attributes refuses them all) costs that attribute, with a
    /// warning, not the restore; the others are set.
    #[test]
    fn refused_attributes_do_not_fail_the_restore() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("depot");
        let mut r = depot_restorer(&dest);
        let x = |name: &str| crate::member::Xattr {
            name: name.into(),
            value: b"v".to_vec(),
        };
        let file = Member {
            mode: 0o644,
            xattrs: vec![x("nosuchnamespace.a"), x("user.kept")],
            ..Member::control("DATA/DEPOT/p/a", 2)
        };
        r.add(&file, &mut &b"hi"[..]).unwrap();
        // Counted by the writer thread, which is done by the end of `commit`.
        let failures = Arc::clone(&r.meta.xattr_failures);
        r.commit().unwrap();
        assert_eq!(failures.load(Ordering::Relaxed), 1);
        let p = dest.join("p/a");
        assert_eq!(std::fs::read(&p).unwrap(), b"hi");
        assert_eq!(
            xattr::get(&p, "user.kept").unwrap().as_deref(),
            Some(&b"v"[..])
        );
    }

    #[test]
    fn a_member_of_a_target_left_unread_fails_the_restore() {
        let tmp = tempfile::tempdir().unwrap();
        let mut r = Restorer::new(vec![Target {
            prefix: "DATA/DEPOT/small".into(),
            what: "product small".into(),
            dest: Dest::Tree(tmp.path().join("small")),
        }])
        .unwrap();
        for other in ["DATA/DEPOT/big/x.wim", "DATA/DEPOT/smaller/a", "CONTENT/x"] {
            r.pass_over(&Member::control(other, 5)).unwrap();
        }
        let e = r
            .pass_over(&Member::control("DATA/DEPOT/small/a.msi", 5))
            .unwrap_err();
        assert!(e.to_string().contains("left unread"), "{e}");
    }
}
