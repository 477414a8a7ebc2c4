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
    /// The path of every member.
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

/// A backup to restore from.
pub(crate) trait BackupSource {
    fn name(&self) -> String;

    /// The first pass: reads the whole backup and verifies it. Fails, naming every problem,
    /// when it is not intact.
    fn survey(&mut self) -> Result<Survey>;

    /// A later pass: every member into `sink`, in archive order. Each file the sink reads is
    /// checked to its end against what `survey` verified, and its `add` fails when it differs
    /// (the backup changed between the passes); a member the sink leaves unread is not checked.
    fn replay(&mut self, sink: &mut dyn MemberSink) -> Result<()>;
}
