//! What `create` backs up and in which order, as the original does: the file backends (base
//! directory, then the host key file when it lies outside), the mysql dumps, the dhcpd config
//! files, and last the whole /etc/opsi.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::layout;
use crate::logging;
use crate::member::{Member, MemberKind, Mtime};
use crate::mysql::{self, DumpOptions, MysqlConfig, Prefetch};
use crate::opsi::backends::Selection;
use crate::opsi::data_dirs::DataDir;
use crate::opsi::root::OpsiRoot;
use crate::owners::Owners;
use crate::parent::Parent;
use crate::sink::MemberSink;
use crate::source::exclude::Exclude;
use crate::source::tree;

/// One part of a backup, in archive order.
#[derive(Debug)]
pub(crate) enum Part {
    /// A file or directory tree at `path` (resolved under the root) stored as `arc`.
    Path { path: PathBuf, arc: String },
    /// A mysqldump of a backend, stored as `CONTENT/BACKENDS/MYSQL/<name>/database.sql`.
    Mysql { name: String, config: MysqlConfig },
    /// The server's bulk data (depot, ...): the tree at `dir.path` stored as `DATA/<PART>`,
    /// without what `exclude` matches. Repository snapshots only.
    Data { dir: DataDir, exclude: Exclude },
}

#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub parts: Vec<Part>,
    /// What the backup holds, for listing snapshots: "configuration", "file", "mysql", "dhcp".
    pub kinds: Vec<String>,
}

fn basename(p: &str) -> String {
    Path::new(p)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn dirname(p: &str) -> String {
    Path::new(p)
        .parent()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl Plan {
    pub(crate) fn new(root: &OpsiRoot, sel: &Selection<'_>, configuration: bool) -> Result<Plan> {
        let mut plan = Plan::default();
        for b in &sel.file {
            if !b.dispatched {
                logging::warning(format!(
                    "Backing up backend {} although it's currently not in use.",
                    b.name
                ));
            }
            let base = b.file_base_dir()?;
            plan.parts.push(Part::Path {
                path: root.resolve(&base),
                arc: layout::file_backend(&b.name),
            });
            let keys = b.file_host_key_file()?;
            // The original's test, kept as is: a substring test on the key file's directory.
            if !dirname(&keys).contains(base.as_str()) {
                plan.parts.push(Part::Path {
                    path: root.resolve(&keys),
                    arc: format!("{}/{}", layout::file_host_keys(&b.name), basename(&keys)),
                });
            }
            plan.note("file");
        }
        for b in &sel.mysql {
            if !b.dispatched {
                logging::warning(format!(
                    "Backing up backend {} although it's currently not in use.",
                    b.name
                ));
            }
            let config = b.mysql()?;
            plan.parts.push(Part::Mysql {
                name: b.name.clone(),
                config,
            });
            plan.note("mysql");
        }
        for b in &sel.dhcp {
            if !b.dispatched {
                logging::warning(format!(
                    "Backing up backend {} although it's currently not in use.",
                    b.name
                ));
            }
            if let Some(file) = b.dhcpd_config_file()? {
                plan.parts.push(Part::Path {
                    path: root.resolve(&file),
                    arc: format!("{}/{}", layout::dhcp_backend(&b.name), basename(&file)),
                });
                plan.note("dhcp");
            }
        }
        if configuration {
            plan.parts.push(Part::Path {
                path: root.conf_dir(),
                arc: layout::CONF.into(),
            });
            plan.note("configuration");
        }
        plan.kinds.sort();
        Ok(plan)
    }

    /// Adds the server's bulk data, each directory with its exclusions, after everything
    /// else; its kind is named in the snapshot's backends list.
    pub(crate) fn add_data(&mut self, dirs: Vec<(DataDir, Exclude)>) {
        for (dir, exclude) in dirs {
            self.note(dir.part.name());
            self.parts.push(Part::Data { dir, exclude });
        }
        self.kinds.sort();
    }

    /// Whether the plan holds bulk data (which only a repository takes).
    pub(crate) fn has_data(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Data { .. }))
    }

    fn note(&mut self, kind: &str) {
        if !self.kinds.iter().any(|k| k == kind) {
            self.kinds.push(kind.to_string());
        }
    }

    /// The bytes `run` will read (or take from `parent` unread), for a progress bar: the
    /// regular files under each path as they are now, and each MySQL dump at its size in the
    /// parent. None when a dump has no such size (a first snapshot): a dump's size is known
    /// only once it is written.
    pub(crate) fn expected_bytes(&self, parent: Option<&Parent>) -> Option<u64> {
        let mut total = 0u64;
        for part in &self.parts {
            match part {
                Part::Path { path, .. }
                | Part::Data {
                    dir: DataDir { path, .. },
                    ..
                } => {
                    total += walkdir::WalkDir::new(path)
                        .into_iter()
                        .filter_map(|e| e.ok())
                        .filter(|e| e.file_type().is_file())
                        .filter_map(|e| e.metadata().ok())
                        .map(|m| m.len())
                        .sum::<u64>();
                }
                Part::Mysql { name, .. } => {
                    total += parent?.size(&layout::mysql_dump(name))?;
                }
            }
        }
        Some(total)
    }

    /// Streams every part into `sink`, in order.
    /// With a `parent` snapshot, unchanged files are stored by reference to it. With
    /// `spool_dir`, the first MySQL dump starts at once and is spooled there until its turn
    /// (see `mysql/prefetch.rs`), so that it runs while the files are backed up.
    pub(crate) fn run(
        &self,
        dump: &DumpOptions,
        parent: Option<&Parent>,
        sink: &mut dyn MemberSink,
        spool_dir: Option<&Path>,
    ) -> Result<()> {
        let mut owners = Owners::default();
        let first_dump = self.parts.iter().find_map(|p| match p {
            Part::Mysql { name, config } => Some((name, config)),
            Part::Path { .. } | Part::Data { .. } => None,
        });
        let mut early = match (spool_dir, first_dump) {
            (Some(dir), Some((name, config))) => {
                logging::info(format!(
                    "Dumping the mysql backend {name} (spooled until its turn)"
                ));
                Some(Prefetch::start(config, dump, name, dir)?)
            }
            _ => None,
        };
        for part in &self.parts {
            match part {
                Part::Path { path, arc } => {
                    logging::info(format!("Backing up {} as {arc}", path.display()));
                    tree::add_path(path, arc, &mut owners, parent, sink)?;
                }
                Part::Mysql { name, config } => {
                    let member = dump_member(name, &mut owners);
                    let size = match early.take() {
                        Some(prefetched) => prefetched.add(member, sink)?,
                        None => {
                            logging::info(format!("Dumping the mysql backend {name}"));
                            mysql::dump_into(config, dump, member, sink)?
                        }
                    };
                    logging::info(format!("mysql backend {name}: {size} bytes dumped"));
                }
                Part::Data { dir, exclude } => {
                    let arc = dir.part.prefix();
                    logging::info(format!(
                        "Backing up the {} {} as {arc} ({})",
                        dir.part.name(),
                        dir.path.display(),
                        dir.what
                    ));
                    tree::add_path_excluding(&dir.path, &arc, exclude, &mut owners, parent, sink)?;
                }
            }
        }
        Ok(())
    }
}

/// The dump's member, owned by the user running the backup with mode 0600, as the original's
/// temporary dump file was.
fn dump_member(name: &str, owners: &mut Owners) -> Member {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    Member {
        path: layout::mysql_dump(name),
        kind: MemberKind::File,
        mode: 0o600,
        uid: u64::from(uid),
        gid: u64::from(gid),
        uname: owners.user(uid),
        gname: owners.group(gid),
        mtime: Mtime::from_unix(now.as_secs() as i64, now.subsec_nanos()),
        size: 0,
        raw_header: None,
        stamp: None,
        xattrs: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parent::Parent;

    /// The expected bytes are the regular files under each path (a symlink to a big file
    /// counts nothing: it is stored as a link) and each dump at its parent's size.
    #[test]
    fn expected_bytes_count_files_and_the_parents_dumps() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        std::fs::write(tree.join("a.ini"), vec![b'a'; 300]).unwrap();
        std::fs::write(tree.join("sub/b.ini"), vec![b'b'; 4000]).unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![0; 100_000]).unwrap();
        std::os::unix::fs::symlink(&big, tree.join("link")).unwrap();
        let single = dir.path().join("dhcpd.conf");
        std::fs::write(&single, vec![b'd'; 50]).unwrap();
        let mut plan = Plan::default();
        plan.parts.push(Part::Path {
            path: tree,
            arc: "CONTENT/a".into(),
        });
        plan.parts.push(Part::Path {
            path: single,
            arc: "CONTENT/d".into(),
        });
        assert_eq!(plan.expected_bytes(None), Some(4350));

        plan.parts.push(Part::Mysql {
            name: "mysql".into(),
            config: MysqlConfig {
                address: "localhost".into(),
                database: "opsi".into(),
                username: "u".into(),
                password: "p".into(),
            },
        });
        assert_eq!(
            plan.expected_bytes(None),
            None,
            "a first dump's size is unknown"
        );
        let mut parent = Parent::new("s".into());
        assert_eq!(plan.expected_bytes(Some(&parent)), None);
        parent.add_stream(layout::mysql_dump("mysql"), vec![[3; 32]], 7000);
        assert_eq!(plan.expected_bytes(Some(&parent)), Some(11_350));
    }
}
