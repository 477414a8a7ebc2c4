//! The server's bulk data of a snapshot (`DATA/<PART>/...`) as plain tar files beside an
//! exported archive, one per part: `<archive stem>.<part>.tar` (`x_20240101_0300.depot.tar`),
//! its members named `<part>/...` (`depot/win10-x64/setup.exe`). The headers are the
//! archive's own PAX headers (ustar plus `path`, `size`, `mtime` records where needed), which
//! GNU tar and Python's tarfile read.
//!
//! Why not inside the archive: the original opsi-backup reads the whole archive for `list`,
//! `verify` and `restore` (python-opsi `OpsiBackupArchive`: `verify` hashes every CONTENT
//! member against CONTROL/checksums, the `restore*` and `has*` methods walk all members), so
//! 100 GB of depot in a bz2 archive would make every one of its commands decompress it all;
//! and members outside CONTENT are nothing the original knows how to restore. The archive
//! stays exactly the original's format.

use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};

use crate::archive::tar_writer::TarWriter;
use crate::error::{Error, IoContext, Result};
use crate::layout::DataPart;
use crate::member::Member;
use crate::sink::MemberSink;

type PartTar = TarWriter<BufWriter<tempfile::NamedTempFile>>;

/// A sink for the bulk data members: each part into its own tar file, written under a
/// temporary name and renamed into place by `finish`.
pub(crate) struct DataTars {
    dir: PathBuf,
    stem: String,
    open: Vec<(DataPart, PartTar)>,
}

/// The archive's file name without its `.tar[.gz|.bz2]` extensions.
fn stem_of(archive: &Path) -> String {
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for ext in [".tar.bz2", ".tar.gz", ".tar", ".bz2", ".gz"] {
        if let Some(s) = name.strip_suffix(ext) {
            return s.to_string();
        }
    }
    name
}

impl DataTars {
    /// Tars beside `archive` (the exported archive's final path).
    pub(crate) fn beside(archive: &Path) -> DataTars {
        let dir = match archive.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        DataTars {
            dir,
            stem: stem_of(archive),
            open: Vec::new(),
        }
    }

    /// The file part `part` is written to.
    pub(crate) fn path_of(&self, part: DataPart) -> PathBuf {
        self.dir.join(format!("{}.{}.tar", self.stem, part.name()))
    }

    /// Ends every tar, makes it durable and renames it into place; the paths written.
    pub(crate) fn finish(mut self) -> Result<Vec<PathBuf>> {
        let mut done = Vec::new();
        let open = std::mem::take(&mut self.open);
        for (part, tar) in open {
            let dest = self.path_of(part);
            let buf = tar.finish()?;
            let tmp = buf
                .into_inner()
                .map_err(|e| Error::io(format!("writing {}", dest.display()), e.into_error()))?;
            tmp.as_file()
                .sync_all()
                .path_ctx("flushing to disk", &dest)?;
            tmp.persist(&dest).map_err(|e| {
                Error::io(
                    format!("cannot move the tar to {}", dest.display()),
                    e.error,
                )
            })?;
            crate::durable::sync_parent(&dest)?;
            done.push(dest);
        }
        Ok(done)
    }

    fn tar_for(&mut self, part: DataPart) -> Result<&mut PartTar> {
        if let Some(i) = self.open.iter().position(|(p, _)| *p == part) {
            return Ok(&mut self.open[i].1);
        }
        let tmp = tempfile::Builder::new()
            .prefix(&crate::leftovers::partial_prefix())
            .suffix(".partial")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .tempfile_in(&self.dir)
            .map_err(|e| Error::io(format!("cannot create a tar in {}", self.dir.display()), e))?;
        self.open
            .push((part, TarWriter::new(BufWriter::with_capacity(1 << 20, tmp))));
        Ok(&mut self.open.last_mut().expect("pushed").1)
    }
}

impl MemberSink for DataTars {
    fn add(&mut self, member: &Member, content: &mut dyn Read) -> Result<()> {
        let Some(part) = DataPart::of(&member.path) else {
            return Ok(());
        };
        let rel = part.below(&member.path).unwrap_or_default();
        let mut m = member.clone();
        m.path = if rel.is_empty() {
            part.name().to_string()
        } else {
            format!("{}/{rel}", part.name())
        };
        if let crate::member::MemberKind::Hardlink(to) = &m.kind {
            let to_rel = link_target(&member.path, part, to)?;
            m.kind = crate::member::MemberKind::Hardlink(format!("{}/{to_rel}", part.name()));
        }
        m.raw_header = None;
        self.tar_for(part)?.add(&m, content)
    }
}

/// A hard link's target below its part: a snapshot of this program only links within a
/// product, and a tar whose link climbs out (`../../etc/shadow`) or into another part is
/// not written.
fn link_target<'a>(member: &str, part: DataPart, to: &'a str) -> Result<&'a str> {
    match part.below(to) {
        Some(rel)
            if !rel.is_empty()
                && rel
                    .split('/')
                    .all(|c| !c.is_empty() && c != "." && c != "..") =>
        {
            Ok(rel)
        }
        _ => Err(Error::UnsafePath(format!(
            "{member}: hard link to {to}, outside {} or through '..': not written to a tar",
            part.prefix()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems() {
        assert_eq!(
            stem_of(Path::new("/x/opsiserver_4.3_20240101_0300.tar.bz2")),
            "opsiserver_4.3_20240101_0300"
        );
        assert_eq!(stem_of(Path::new("a.tar")), "a");
        let t = DataTars::beside(Path::new("/x/a.tar.gz"));
        assert_eq!(t.path_of(DataPart::Tftp), PathBuf::from("/x/a.tftp.tar"));
    }

    #[test]
    fn hard_links_leaving_their_part_are_not_written() {
        let d = DataPart::Depot;
        assert_eq!(
            link_target("m", d, "DATA/DEPOT/win10/a.exe").unwrap(),
            "win10/a.exe"
        );
        for to in [
            "../../etc/shadow",
            "/etc/shadow",
            "DATA/DEPOT/win10/../../../etc/shadow",
            "DATA/TFTP/grub.efi",
            "DATA/DEPOT",
            "DATA/DEPOT//x",
        ] {
            let e = link_target("DATA/DEPOT/p/evil", d, to)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("DATA/DEPOT/p/evil") && e.contains("not written"),
                "{e}"
            );
        }
    }
}
