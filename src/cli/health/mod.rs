//! `health`: a check for Icinga, Nagios and check_mk. It prints one status line with
//! performance data and exits 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, looking at the age of
//! the newest snapshot, the age and result of the last verify of the whole repository, how
//! long the lock has been held, and the space left on the repository's file system.
//!
//! It only reads (`store::probe_at`): it never takes or waits for the lock and writes nothing.
//! On object storage it reads the bucket and this machine's index cache, needs no password,
//! and watches the unfinished uploads instead of free space.
//! A repository it cannot see (missing, not a repository, unreadable) is UNKNOWN; damage it
//! sees (a damaged index or config.json) is CRITICAL; any other error is UNKNOWN with its
//! message: never exit 1, never a panic.

mod status;
pub(super) mod threshold;

use std::path::Path;

use clap::Args;

use crate::cli::{human, repo, Global};
use crate::error::Error;
use crate::store::{self, Probe, RemoteNotes, SnapshotKind};
use status::Part;
pub(crate) use status::State;
use threshold::Space;

#[derive(Args, Debug)]
pub struct HealthArgs {
    /// WARNING when the newest snapshot is older than this (s, min, h, d, w).
    #[arg(long, value_name = "AGE", default_value = "26h", value_parser = threshold::duration)]
    pub warning: u64,
    /// CRITICAL when the newest snapshot is older than this (or there is none).
    #[arg(long, value_name = "AGE", default_value = "50h", value_parser = threshold::duration)]
    pub critical: u64,
    /// Look at the snapshots of this host only (default: the newest of any host).
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Which snapshots' age to watch: those of `create` and `import` of archives
    /// (`opsi-backup`), or the stored `opsiconfd backup` files (`opsiconfd`). One check per
    /// kind, so that a fresh snapshot of one kind never hides a failing nightly job of the other.
    #[arg(long, value_name = "KIND", value_enum, default_value_t = Watched::OpsiBackup)]
    pub kind: Watched,
    /// WARNING when the last verify of the whole repository is older than this.
    #[arg(long, value_name = "AGE", default_value = "8d", value_parser = threshold::duration)]
    pub verify_warning: u64,
    /// CRITICAL when the last verify of the whole repository is older than this (a failed
    /// last verify is always CRITICAL).
    #[arg(long, value_name = "AGE", default_value = "15d", value_parser = threshold::duration)]
    pub verify_critical: u64,
    /// WARNING when a process has held the repository lock longer than this.
    #[arg(long, value_name = "AGE", default_value = "6h", value_parser = threshold::duration)]
    pub lock_warning: u64,
    /// CRITICAL when a process has held the repository lock longer than this (default: never).
    #[arg(long, value_name = "AGE", value_parser = threshold::duration)]
    pub lock_critical: Option<u64>,
    /// WARNING when less space than this is free on the repository's file system (10% or 5G).
    #[arg(long, value_name = "FREE", default_value = "10%", value_parser = threshold::space)]
    pub space_warning: Space,
    /// CRITICAL when less space than this is free on the repository's file system.
    #[arg(long, value_name = "FREE", default_value = "5%", value_parser = threshold::space)]
    pub space_critical: Space,
}

/// The kind of snapshots `health` watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Watched {
    OpsiBackup,
    Opsiconfd,
}

impl Watched {
    fn kind(self) -> SnapshotKind {
        match self {
            Watched::OpsiBackup => SnapshotKind::OpsiBackup,
            Watched::Opsiconfd => SnapshotKind::Opsiconfd,
        }
    }

    /// How the status line names such snapshots.
    fn noun(self) -> &'static str {
        match self {
            Watched::OpsiBackup => "snapshot",
            Watched::Opsiconfd => "opsiconfd snapshot",
        }
    }
}

pub(super) fn health(g: &Global, a: HealthArgs) -> anyhow::Result<i32> {
    let now = chrono::Utc::now().timestamp();
    let looked = std::panic::catch_unwind(|| check(g, &a, now));
    let (state, line) = match looked {
        Ok(Ok(parts)) => status::line(&parts),
        Ok(Err(e)) => {
            let state = state_of_error(&e);
            (state, status::failed(state, &explain(&e)))
        }
        Err(_) => (
            State::Unknown,
            status::failed(State::Unknown, "internal error (see standard error)"),
        ),
    };
    println!("{line}");
    Ok(state as i32)
}

/// The line of a check that could not even start (e.g. an unreadable settings file).
pub(super) fn unknown(message: &str) -> i32 {
    println!("{}", status::failed(State::Unknown, message));
    State::Unknown as i32
}

fn check(g: &Global, a: &HealthArgs, now: i64) -> Result<Vec<Part>, Error> {
    let Some(root) = g.repository.as_deref() else {
        return Err(Error::Invalid(
            "no repository given: use --repository DIR or set OPSI_BACKUP_REPOSITORY".into(),
        ));
    };
    let probe = store::probe_at(&repo::location_of(g, root)?)?;
    let last = match &probe.remote {
        None => space_left(root, a),
        Some(notes) => remote_notes(notes),
    };
    Ok(vec![
        newest_snapshot(&probe, a, now),
        last_verify(&probe, a, now),
        lock_held(&probe, a, now),
        last,
    ])
}

/// Of a repository on object storage: no free space to watch (the bucket's quota is the
/// storage's business), but what this machine's index cache does not know yet, and the
/// unfinished uploads of killed writers, which hold space until the next prune.
fn remote_notes(n: &RemoteNotes) -> Part {
    let mut said = Vec::new();
    if n.unknown_snapshots > 0 {
        said.push(format!(
            "{} snapshot(s) written by another machine not yet in this machine's index cache",
            n.unknown_snapshots
        ));
    }
    if n.gone_snapshots > 0 {
        said.push(format!(
            "{} snapshot(s) removed by another machine",
            n.gone_snapshots
        ));
    }
    let perf = match &n.uploads {
        Ok(u) => {
            said.extend(store::pending_uploads_note(*u));
            format!("uploads_unfinished={}", u.total)
        }
        // Not worth an UNKNOWN: the backups' state is known.
        Err(e) => {
            said.push(format!("unfinished uploads not listed ({e})"));
            "uploads_unfinished=U".to_string()
        }
    };
    Part {
        state: State::Ok,
        text: (!said.is_empty()).then(|| said.join(", ")),
        perf: vec![perf],
    }
}

/// Damage seen is CRITICAL; a repository that cannot be seen, or any other error, UNKNOWN.
fn state_of_error(e: &Error) -> State {
    match e {
        Error::Corrupt(_) | Error::IndexDamaged { .. } => State::Critical,
        _ => State::Unknown,
    }
}

fn explain(e: &Error) -> String {
    match e {
        Error::Io { cause, .. } if cause.kind() == std::io::ErrorKind::PermissionDenied => {
            format!("{e}; the repository is readable by root only: run the check as root (sudo)")
        }
        _ => e.to_string(),
    }
}

fn seconds_since(now: i64, then: i64) -> u64 {
    u64::try_from(now.saturating_sub(then)).unwrap_or(0)
}

fn over(state: State, threshold: u64) -> String {
    match state {
        State::Ok => String::new(),
        _ => format!(" > {}", threshold::exact(threshold)),
    }
}

fn newest_snapshot(p: &Probe, a: &HealthArgs, now: i64) -> Part {
    let newest = p
        .snapshots
        .iter()
        .filter(|s| s.kind() == a.kind.kind())
        .filter(|s| a.host.as_deref().is_none_or(|h| s.host == h))
        .max_by(|x, y| x.recency().cmp(&y.recency()));
    let noun = a.kind.noun();
    let Some(s) = newest else {
        let text = match &a.host {
            Some(h) => format!("no {noun} of host {h}"),
            None => format!("no {noun}"),
        };
        return Part {
            state: State::Critical,
            text: Some(text),
            perf: vec![format!("age=U;{};{};0", a.warning, a.critical)],
        };
    };
    let age = seconds_since(now, s.time);
    let state = State::of_level(age, Some(a.warning), Some(a.critical));
    let limit = if state == State::Critical {
        a.critical
    } else {
        a.warning
    };
    Part {
        state,
        text: Some(format!(
            "newest {noun} {} ago{} (host {}, {})",
            threshold::age(age),
            over(state, limit),
            s.host,
            human::short(&s.id)
        )),
        perf: vec![format!("age={age}s;{};{};0", a.warning, a.critical)],
    }
}

fn last_verify(p: &Probe, a: &HealthArgs, now: i64) -> Part {
    let (w, c) = (a.verify_warning, a.verify_critical);
    let Some(v) = &p.last_verify else {
        // Never verified: a new repository has the grace of the thresholds.
        let age = seconds_since(now, p.created);
        let state = State::of_level(age, Some(w), Some(c));
        return Part {
            state,
            text: Some(format!(
                "no full verify yet (repository created {} ago){}",
                threshold::age(age),
                over(state, if state == State::Critical { c } else { w })
            )),
            perf: vec![format!("verify_age=U;{w};{c};0")],
        };
    };
    let age = seconds_since(now, v.finished);
    let perf = vec![format!("verify_age={age}s;{w};{c};0")];
    if !v.ok {
        let why = match &v.error {
            Some(e) => e.clone(),
            None => format!("{} problems", v.problems),
        };
        return Part {
            state: State::Critical,
            text: Some(format!(
                "last full verify {} ago FAILED ({why})",
                threshold::age(age)
            )),
            perf,
        };
    }
    let state = State::of_level(age, Some(w), Some(c));
    Part {
        state,
        text: Some(format!(
            "last full verify {} ago{}",
            threshold::age(age),
            over(state, if state == State::Critical { c } else { w })
        )),
        perf,
    }
}

fn lock_held(p: &Probe, a: &HealthArgs, now: i64) -> Part {
    let (w, c) = (a.lock_warning, a.lock_critical);
    let crit = c.map(|c| c.to_string()).unwrap_or_default();
    let Some(h) = p.holders.iter().min_by_key(|h| h.since) else {
        return Part {
            state: State::Ok,
            text: None,
            perf: vec![format!("lock_age=0s;{w};{crit};0")],
        };
    };
    let age = seconds_since(now, h.since);
    let state = State::of_level(age, Some(w), c);
    let limit = match (state, c) {
        (State::Critical, Some(c)) => c,
        _ => w,
    };
    Part {
        state,
        text: Some(format!(
            "locked for {}{} by pid {} on {} ({} lock to {})",
            threshold::age(age),
            over(state, limit),
            h.pid,
            h.host,
            h.kind,
            h.purpose
        )),
        perf: vec![format!("lock_age={age}s;{w};{crit};0")],
    }
}

fn space_left(root: &Path, a: &HealthArgs) -> Part {
    let st = match nix::sys::statvfs::statvfs(root) {
        Ok(st) => st,
        Err(e) => {
            return Part {
                state: State::Unknown,
                text: Some(format!("free space unknown: statvfs: {e}")),
                perf: Vec::new(),
            }
        }
    };
    let unit = st.fragment_size();
    let total = st.blocks().saturating_mul(unit);
    let free = st.blocks_available().saturating_mul(unit);
    let percent = if total == 0 {
        100.0
    } else {
        free as f64 * 100.0 / total as f64
    };
    let below = |t: Space| match t {
        Space::Percent(p) => percent < p,
        Space::Bytes(b) => free < b,
    };
    let (state, limit) = if below(a.space_critical) {
        (State::Critical, Some(a.space_critical))
    } else if below(a.space_warning) {
        (State::Warning, Some(a.space_warning))
    } else {
        (State::Ok, None)
    };
    let limit = match limit {
        Some(Space::Percent(p)) => format!(" < {p}%"),
        Some(Space::Bytes(b)) => format!(" < {}", human::bytes(b)),
        None => String::new(),
    };
    // Nagios ranges: `10:` alerts below 10. Each threshold goes with the value of its kind.
    let range = |t: Space, percent_kind: bool| match (t, percent_kind) {
        (Space::Percent(p), true) => format!("{p}:"),
        (Space::Bytes(b), false) => format!("{b}:"),
        _ => String::new(),
    };
    Part {
        state,
        text: Some(format!(
            "{percent:.0}% free{limit} ({} of {})",
            human::bytes(free),
            human::bytes(total)
        )),
        perf: vec![
            format!(
                "free={percent:.2}%;{};{};0;100",
                range(a.space_warning, true),
                range(a.space_critical, true)
            ),
            format!(
                "free_bytes={free}B;{};{};0;{total}",
                range(a.space_warning, false),
                range(a.space_critical, false)
            ),
        ],
    }
}
