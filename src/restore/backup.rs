//! What restore needs from a backup, whatever holds it (an archive file, a repository
//! snapshot; the command line brings them, see `cli/backup_source.rs`): a name for messages, a
//! first pass that verifies everything and answers what planning needs, and later passes whose
//! members are checked again as they arrive. Restore never sees checksums or formats.

use std::collections::{BTreeMap, HashSet};

use crate::error::Result;
use crate::layout::Part;
use crate::opsi::sysinfo::SysInfo;
use crate::sink::MemberSink;

/// What restore learns in the verifying pass, before it plans anything.
#[derive(Debug, Default)]
pub(crate) struct Survey {
    /// The path of every member; of bulk data only the part and product directories
    /// (`DATA/DEPOT/win10-x64`), so that a depot of millions of files costs no memory here.
    pub present: HashSet<String>,
    /// The system the backup was taken on (CONTROL/sysinfo).
    pub sysinfo: SysInfo,
    /// The backend configuration files of the archived /etc/opsi (`backends/*.conf`,
    /// dispatch.conf), by member path: planning reads them before anything is touched.
    pub planning_files: BTreeMap<String, Vec<u8>>,
}

impl Survey {
    /// Whether the backup holds anything of `part`.
    pub(crate) fn holds(&self, part: Part) -> bool {
        self.present.iter().any(|p| Part::of(p) == Some(part))
    }

    /// Whether the backup holds the member `prefix` or anything below it.
    pub(crate) fn holds_below(&self, prefix: &str) -> bool {
        self.present.iter().any(|p| {
            p.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }
}

/// Which members' content a restore needs. A restore of bulk data alone (`--backends depot`,
/// `--product`, `tftp`, ...) needs only what lies below the prefixes it restores; a source
/// that can reach members apart (a snapshot) then leaves the others unread. Whatever the
/// scope, a source reads what its own checks need (CONTROL/, the planning files) and the
/// metadata of every member, so `Survey::present` stays complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Every member: the configuration, a backend, or every part of the bulk data.
    Whole,
    /// The members at or below these prefixes (`DATA/DEPOT/win10-x64`, `DATA/TFTP`).
    Below(Vec<String>),
}

impl Scope {
    /// Whether the restore needs the content of member `path`.
    pub(crate) fn reads(&self, path: &str) -> bool {
        match self {
            Scope::Whole => true,
            Scope::Below(prefixes) => prefixes.iter().any(|p| {
                path.strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            }),
        }
    }
}

/// A backup to restore from.
pub(crate) trait BackupSource {
    fn name(&self) -> String;

    /// The first pass: reads the backup and verifies it; of a backup whose members it can
    /// reach apart, only the content `scope` needs and what verifying that needs. Fails,
    /// naming every problem, when it is not intact.
    fn survey(&mut self, scope: &Scope) -> Result<Survey>;

    /// A later pass: every member into `sink`, in archive order (those outside the survey's
    /// scope may come as `MemberSink::pass_over`). Each file the sink reads is checked to its
    /// end against what `survey` verified, and its `add` fails when it differs (the backup
    /// changed between the passes); a member the sink leaves unread is not checked.
    fn replay(&mut self, sink: &mut dyn MemberSink) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_takes_itself_and_what_lies_below() {
        let s = Scope::Below(vec!["DATA/DEPOT/win10".into(), "DATA/TFTP".into()]);
        assert!(s.reads("DATA/DEPOT/win10") && s.reads("DATA/DEPOT/win10/a/b"));
        assert!(s.reads("DATA/TFTP/grub.efi"));
        assert!(!s.reads("DATA/DEPOT/win10x/a") && !s.reads("DATA/DEPOT"));
        assert!(!s.reads("CONTENT/BACKENDS/FILE/x"));
        assert!(Scope::Whole.reads("CONTENT/BACKENDS/FILE/x"));
    }
}
