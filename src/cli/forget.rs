//! `forget [--keep-* N] [--keep-within D] [--dry-run] [--prune] [SNAPSHOT...]`: removes the
//! snapshots a retention policy does not keep (restic's semantics, per host; see
//! `retention.rs`), or the named snapshots. Without keep options the `[retention]` policy of
//! /etc/opsi/opsi-backup.toml applies. The data of removed snapshots is freed by `prune`.

use clap::Args;

use crate::cli::{human, json, output, prune, repo, Global};
use crate::retention::{self, Decision, Policy};
use crate::store::PruneOptions;

#[derive(Args, Debug)]
pub struct ForgetArgs {
    /// Keep the N newest snapshots.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the N newest hours that have one.
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the N newest days that have one.
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the N newest ISO weeks that have one.
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the N newest months that have one.
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the N newest years that have one.
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot taken within DURATION (e.g. 7d, 2m, 1y6m, 12h) before the newest.
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,
    /// Show every snapshot with keep/remove and the reasons; remove nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Run prune afterwards, freeing the space of the removed snapshots.
    #[arg(long)]
    pub prune: bool,
    /// Remove exactly these snapshots (ids or unique prefixes) instead of applying a policy.
    #[arg(value_name = "SNAPSHOT", conflicts_with_all = ["keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly", "keep_within"])]
    pub snapshots: Vec<String>,
    /// Print the decisions (and with --prune prune's report) as JSON (docs/json.md).
    #[arg(long)]
    pub json: bool,
}

impl ForgetArgs {
    fn policy(&self) -> Policy {
        Policy {
            keep_last: self.keep_last,
            keep_hourly: self.keep_hourly,
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_monthly: self.keep_monthly,
            keep_yearly: self.keep_yearly,
            keep_within: self.keep_within.clone(),
        }
    }
}

pub(super) fn forget(g: &Global, a: ForgetArgs) -> anyhow::Result<i32> {
    let r = repo::open(g)?;
    let mut doc = json::Forget {
        schema: json::schema("forget"),
        dry_run: a.dry_run,
        decisions: Vec::new(),
        removed: 0,
        refused: None,
        prune: None,
    };
    let n = if a.snapshots.is_empty() {
        let mut policy = a.policy();
        if policy.is_empty() {
            policy = g.settings.retention.clone();
        }
        if policy.is_empty() {
            anyhow::bail!(
                "no retention policy: give --keep-last/--keep-hourly/--keep-daily/--keep-weekly/\
                 --keep-monthly/--keep-yearly N or --keep-within DURATION, or set [retention] in \
                 {}; nothing was removed",
                crate::settings::SETTINGS_FILE
            );
        }
        // Planned and removed under one lock: see Repository::forget_by_policy.
        let (decisions, n) = r.forget_by_policy(&policy, a.dry_run)?;
        print_decisions(&decisions);
        doc.decisions = decisions.iter().map(json::ForgetDecision::from).collect();
        if a.dry_run {
            let remove = decisions.iter().filter(|d| !d.keep).count();
            say!(
                "dry run: {} would be removed; nothing was changed",
                output::count(remove as u64, "snapshot")
            );
            if let Err(e) = retention::check_keeps_each_host(&decisions) {
                say!("without --dry-run this would be refused: {e}");
                doc.refused = Some(e.to_string());
            }
            return finish(&a, &doc);
        }
        n
    } else {
        let mut ids = Vec::new();
        for s in &a.snapshots {
            let info = r.resolve(s)?;
            say!(
                "{:<12}  {:<19}  {:<28}  remove",
                human::short(&info.id),
                crate::logging::local_time(info.time),
                info.host
            );
            doc.decisions.push(json::ForgetDecision::named(&info));
            ids.push(info.id);
        }
        if a.dry_run {
            say!(
                "dry run: {} would be removed; nothing was changed",
                output::count(ids.len() as u64, "snapshot")
            );
            return finish(&a, &doc);
        }
        r.forget(&ids)?
    };
    output::summary(format!("{} removed", output::count(n as u64, "snapshot")));
    doc.removed = n as u64;
    if a.prune {
        let report = r.prune(PruneOptions::default())?;
        prune::print_report(&report);
        doc.prune = Some(report);
    }
    finish(&a, &doc)
}

/// Prints the document when asked for; forget's exit code is 0 once it gets here.
fn finish(a: &ForgetArgs, doc: &json::Forget) -> anyhow::Result<i32> {
    if a.json {
        json::print(doc)?;
    }
    Ok(0)
}

fn print_decisions(decisions: &[Decision]) {
    say!(
        "{:<12}  {:<19}  {:<28}  {:<6}  REASONS",
        "ID",
        "TIME",
        "HOST",
        "ACTION"
    );
    for d in decisions {
        say!(
            "{:<12}  {:<19}  {:<28}  {:<6}  {}",
            human::short(&d.id),
            crate::logging::local_time(d.time),
            d.host,
            if d.keep { "keep" } else { "remove" },
            d.reasons.join(", ")
        );
    }
}
