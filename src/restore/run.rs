//! The restore flow, the same for every backup source (`backup.rs`):
//! 1. read everything once and verify it; nothing is touched when that fails (bulk data of a
//!    snapshot is verified chunk by chunk in step 4 instead, before anything is swapped in);
//! 2. compare the backup's sysinfo with this server's and ask the caller to confirm any
//!    difference, unless `--force`;
//! 3. plan the targets and check where they lie (`confine.rs`), remove what dead runs left
//!    beside them; 4. read again, writing into staging areas while the source checks every
//!    file again; 5. swap the staged data in.

use crate::error::{Error, IoContext, Result};
use crate::layout::{self, Part};
use crate::leftovers;
use crate::logging;
use crate::opsi::backends::{load_backends, BackendSet};
use crate::opsi::root::OpsiRoot;
use crate::opsi::sysinfo::SysInfo;
use crate::rename::{self, FileRenameOptions};
use crate::restore::backup::{BackupSource, Survey};
use crate::restore::confine;
use crate::restore::plan::{self, Renamable, Request};
use crate::restore::restorer::Restorer;

/// Asks whether to go on despite `warning` (several lines, each ending in a newline): `Ok` to
/// go on, an error (`Error::Aborted`) to stop.
pub(crate) type Confirm<'a> = &'a dyn Fn(&str) -> Result<()>;

/// A part of the backup that was restored, for the caller's report.
#[derive(Debug)]
pub(crate) struct Restored {
    /// The archive prefix (`CONTENT/BACKENDS/FILE/`).
    pub prefix: String,
    /// Where it went and what decided that.
    pub what: String,
}

pub(crate) fn restore(
    root: &OpsiRoot,
    src: &mut dyn BackupSource,
    req: &Request,
    confirm: Confirm<'_>,
) -> Result<Vec<Restored>> {
    let name = src.name();
    logging::info(format!("Verifying {name} before restoring"));
    let survey = src.survey(&plan::scope(req))?;

    let here = SysInfo::gather(root);
    if !req.force {
        confirm_sysinfo(&survey, &here, confirm)?;
    }
    let set = backend_set(root, &name, &survey, &here, req)?;
    let fqdn = here.get("fqdn").unwrap_or_default().to_string();
    let mut plan = plan::targets(root, &fqdn, &survey, &set, req)?;
    confine::confine(root, &mut plan)?;
    for dir in plan.staging_dirs() {
        leftovers::clean(&dir);
    }
    logging::notice(format!("Restoring data from backup {name}."));
    let restored = plan
        .targets
        .iter()
        .map(|t| Restored {
            prefix: t.prefix.clone(),
            what: t.what.clone(),
        })
        .collect();
    let mut restorer = Restorer::new(plan.targets)?;
    src.replay(&mut restorer)?;
    restorer.commit()?;
    logging::notice("Restoration complete");
    if let Some(new) = &req.new_server_id {
        rename_server(&plan.renamable, new, here.get("fqdn"))?;
    }
    Ok(restored)
}

/// `--new-server-id`: the config server of every restored backend becomes `new`.
fn rename_server(restored: &[Renamable], new: &str, local_fqdn: Option<&str>) -> Result<()> {
    if restored.is_empty() {
        return Err(Error::Invalid(
            "--new-server-id needs a restored file or mysql backend to rename the config server in"
                .into(),
        ));
    }
    for r in restored {
        let report = match r {
            Renamable::FileBackend {
                base_dir,
                host_key_file,
                ..
            } => {
                let options = FileRenameOptions {
                    host_key_file: Some(host_key_file.clone()),
                    local_fqdn: local_fqdn.map(str::to_string),
                };
                rename::rename_in_file_backend_with(base_dir, None, new, &options)
            }
            Renamable::Mysql(cfg) => rename::rename_in_mysql(cfg, None, new),
        }
        .map_err(|e| Error::Invalid(format!("Failed to rename config server to '{new}': {e}")))?;
        logging::notice(format!(
            "Renamed config server {} to {}",
            report.old_id, report.new_id
        ));
    }
    Ok(())
}

/// The backend configuration that will be in force after the restore: the archived one when
/// the configuration is restored too, else the server's.
/// Backends read from the archive name their member (`<archive>:CONTENT/CONF/backends/x.conf`)
/// as the file they came from, so that messages point at what decided a target.
fn backend_set(
    root: &OpsiRoot,
    archive: &str,
    survey: &Survey,
    here: &SysInfo,
    req: &Request,
) -> Result<BackendSet> {
    let fqdn = here.get("fqdn").unwrap_or_default().to_string();
    if !(req.configuration && survey.holds(Part::Configuration)) {
        let set = load_backends(root, &fqdn)?;
        for w in &set.warnings {
            logging::warning(w);
        }
        return Ok(set);
    }
    let tmp = tempfile::tempdir().ctx("creating a temporary directory")?;
    let conf_root = OpsiRoot::new(tmp.path());
    for (member, bytes) in &survey.planning_files {
        let rel = layout::in_conf(member).unwrap_or(member);
        let rel = crate::restore::safe_path::relative(member, rel)?;
        let dest = conf_root.conf_dir().join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).path_ctx("cannot create", parent)?;
        }
        std::fs::write(&dest, bytes).path_ctx("cannot write", &dest)?;
    }
    std::fs::create_dir_all(conf_root.backends_dir()).ctx("creating a temporary directory")?;
    let mut set = load_backends(&conf_root, &fqdn)?;
    for b in &mut set.backends {
        if let Ok(rel) = b.file.strip_prefix(conf_root.conf_dir()) {
            b.file = format!("{archive}:{}/{}", layout::CONF, rel.display()).into();
        }
    }
    for w in &set.warnings {
        logging::warning(w.replace(&tmp.path().display().to_string(), "<archive>"));
    }
    Ok(set)
}

/// Differences between the backup's system and this one need a yes; so does configuration
/// from before opsi 4.3.
fn confirm_sysinfo(survey: &Survey, here: &SysInfo, confirm: Confirm<'_>) -> Result<()> {
    let diffs = survey.sysinfo.differences(here);
    if diffs.is_empty() {
        return Ok(());
    }
    let mut text = String::from(
        "WARNING: Your system config is different from the one recorded with this backup:\n",
    );
    for d in &diffs {
        let system = d.system.as_deref().unwrap_or("(none)");
        text.push_str(&format!(
            "  {}: backup '{}', this system '{system}'\n",
            d.key, d.archive
        ));
    }
    text.push_str(
        "This means the backup was probably taken for another machine and restoring it might leave this opsi installation unusable.\n",
    );
    confirm(&text)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::member::{Member, MemberKind};
    use crate::restore::backup::Scope;
    use crate::sink::MemberSink;

    /// A backup of /etc/opsi whose replay fails after its file was written, as the source's
    /// check fails a member whose bytes changed since the survey.
    struct ChangedSinceSurvey;

    fn member(path: &str, kind: MemberKind, size: u64) -> Member {
        Member {
            kind,
            mode: 0o755,
            uid: nix::unistd::getuid().as_raw().into(),
            gid: nix::unistd::getgid().as_raw().into(),
            ..Member::control(path, size)
        }
    }

    impl BackupSource for ChangedSinceSurvey {
        fn name(&self) -> String {
            "changed".into()
        }
        fn survey(&mut self, _: &Scope) -> Result<Survey> {
            Ok(Survey {
                present: [layout::CONF, "CONTENT/CONF/opsi.conf"]
                    .map(String::from)
                    .into(),
                ..Survey::default()
            })
        }
        fn replay(&mut self, sink: &mut dyn MemberSink) -> Result<()> {
            sink.add(
                &member(layout::CONF, MemberKind::Dir, 0),
                &mut std::io::empty(),
            )?;
            let conf = member("CONTENT/CONF/opsi.conf", MemberKind::File, 3);
            sink.add(&conf, &mut &b"new"[..])?;
            Err(Error::Corrupt(format!(
                "{}: checksum mismatch while restoring; nothing was changed",
                conf.path
            )))
        }
    }

    #[test]
    fn a_replay_failing_after_writing_touches_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let root = OpsiRoot::new(tmp.path());
        fs::create_dir_all(root.conf_dir()).unwrap();
        fs::write(root.conf_dir().join("opsi.conf"), "old").unwrap();
        let req = Request {
            configuration: true,
            force: true,
            ..Request::default()
        };
        let never = |_: &str| -> Result<()> { panic!("--force asks nothing") };
        let e = restore(&root, &mut ChangedSinceSurvey, &req, &never).unwrap_err();
        assert!(e.to_string().contains("checksum mismatch"), "{e}");
        let conf = fs::read_to_string(root.conf_dir().join("opsi.conf")).unwrap();
        assert_eq!(conf, "old");
        let beside: Vec<_> = fs::read_dir(root.conf_dir().parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(beside, ["opsi"], "nothing staged is left beside /etc/opsi");
    }
}
