//! Which snapshots a retention policy keeps, with restic's `forget` semantics: snapshots are
//! grouped by host and looked at newest first; `--keep-last N` keeps the N newest; each
//! `--keep-hourly/daily/weekly/monthly/yearly N` keeps the newest snapshot of each of the N
//! most recent hours/days/ISO weeks/months/years that have one; `--keep-within D` keeps every
//! snapshot taken within D (e.g. `1y2m3d4h`) before the group's newest one. A snapshot is
//! kept when any rule keeps it, and the reasons are reported. Times are local time.
//! "Newest" is [`recency`]: time, then when the snapshot file was finished, then id.
//!
//! A single wrong value must not erase the backups: a policy whose counts are all 0 is
//! refused (as restic does), and so is a plan that would remove every snapshot of a host.
//! Removing everything takes explicit snapshot ids.

use chrono::{DateTime, Datelike, Local, Months, TimeZone, Timelike};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    pub keep_last: Option<u32>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_yearly: Option<u32>,
    pub keep_within: Option<String>,
}

impl Policy {
    pub fn is_empty(&self) -> bool {
        *self == Policy::default()
    }

    /// True when no rule can keep a snapshot: every count given is 0 and no keep-within.
    pub fn keeps_nothing(&self) -> bool {
        let counts = [
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ];
        self.keep_within.is_none() && counts.iter().all(|c| c.unwrap_or(0) == 0)
    }
}

/// A span such as `1y2m3d4h` (years, months, days, hours).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    pub years: u32,
    pub months: u32,
    pub days: u32,
    pub hours: u32,
}

impl Span {
    pub fn parse(text: &str) -> Result<Span> {
        let bad = || {
            Error::Invalid(format!(
                "invalid duration '{text}': use e.g. 7d, 2m, 1y6m, 12h"
            ))
        };
        let mut span = Span::default();
        let mut num = String::new();
        for c in text.trim().chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let n: u32 = num.parse().map_err(|_| bad())?;
            num.clear();
            match c {
                'y' => span.years += n,
                'm' => span.months += n,
                'd' => span.days += n,
                'h' => span.hours += n,
                _ => return Err(bad()),
            }
        }
        if !num.is_empty() || span == Span::default() {
            return Err(bad());
        }
        Ok(span)
    }

    /// `t` minus the span, in calendar terms.
    fn before(&self, t: DateTime<Local>) -> DateTime<Local> {
        let months = self.years * 12 + self.months;
        let t = t.checked_sub_months(Months::new(months)).unwrap_or(t);
        t - chrono::Duration::days(i64::from(self.days))
            - chrono::Duration::hours(i64::from(self.hours))
    }
}

/// One snapshot as the policy sees it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: String,
    pub time: i64,
    /// When the snapshot file was finished, Unix ns: orders snapshots of the same second.
    pub written: i64,
    pub host: String,
}

/// The one order of snapshots by age, used by `latest`, the snapshot list and retention:
/// the snapshot's time (seconds), then when its file was finished (`written`, nanoseconds:
/// two snapshots of the same second), then the id (only to make the order total). The
/// greater key is the newer snapshot.
pub fn recency(time: i64, written: i64, id: &str) -> (i64, i64, &str) {
    (time, written, id)
}

impl Candidate {
    fn recency(&self) -> (i64, i64, &str) {
        recency(self.time, self.written, &self.id)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub id: String,
    pub time: i64,
    pub host: String,
    pub keep: bool,
    /// Why it is kept, e.g. "daily snapshot", "last snapshot", "within 7d".
    pub reasons: Vec<String>,
}

fn local(t: i64) -> DateTime<Local> {
    Local
        .timestamp_opt(t, 0)
        .earliest()
        .unwrap_or_else(|| Local.timestamp_opt(0, 0).unwrap())
}

/// Decides for every candidate; the result is newest first within each host.
pub fn apply(policy: &Policy, candidates: &[Candidate]) -> Result<Vec<Decision>> {
    if policy.is_empty() {
        return Err(Error::Invalid(
            "no retention policy given (e.g. --keep-daily 7 --keep-weekly 4): nothing would be kept".into(),
        ));
    }
    if policy.keeps_nothing() {
        return Err(Error::Invalid(
            "the retention policy keeps nothing (every keep count is 0); refused, nothing was \
             removed. To remove snapshots on purpose, name them: forget SNAPSHOT..."
                .into(),
        ));
    }
    let within = policy.keep_within.as_deref().map(Span::parse).transpose()?;
    let mut hosts: Vec<&str> = candidates.iter().map(|c| c.host.as_str()).collect();
    hosts.sort_unstable();
    hosts.dedup();
    let mut out = Vec::new();
    for host in hosts {
        let mut group: Vec<&Candidate> = candidates.iter().filter(|c| c.host == host).collect();
        // Newest first.
        group.sort_by(|a, b| b.recency().cmp(&a.recency()));
        let newest = group.first().map(|c| local(c.time));
        type Key = fn(DateTime<Local>) -> i64;
        let mut rules: Vec<(&str, Option<u32>, Key, Option<i64>)> = vec![
            ("last snapshot", policy.keep_last, |t| t.timestamp(), None),
            (
                "hourly snapshot",
                policy.keep_hourly,
                |t| {
                    i64::from(t.year()) * 1_000_000
                        + i64::from(t.ordinal()) * 100
                        + i64::from(t.hour())
                },
                None,
            ),
            (
                "daily snapshot",
                policy.keep_daily,
                |t| i64::from(t.year()) * 1000 + i64::from(t.ordinal()),
                None,
            ),
            (
                "weekly snapshot",
                policy.keep_weekly,
                |t| {
                    let w = t.iso_week();
                    i64::from(w.year()) * 100 + i64::from(w.week())
                },
                None,
            ),
            (
                "monthly snapshot",
                policy.keep_monthly,
                |t| i64::from(t.year()) * 100 + i64::from(t.month()),
                None,
            ),
            (
                "yearly snapshot",
                policy.keep_yearly,
                |t| i64::from(t.year()),
                None,
            ),
        ];
        for c in group {
            let t = local(c.time);
            let mut reasons = Vec::new();
            for (name, count, key, last) in rules.iter_mut() {
                let Some(n) = count else { continue };
                if *n == 0 {
                    continue;
                }
                let k = key(t);
                // keep-last counts every snapshot; the others one per period.
                if *name == "last snapshot" || *last != Some(k) {
                    *last = Some(k);
                    *n -= 1;
                    reasons.push(name.to_string());
                }
            }
            if let (Some(span), Some(newest)) = (within, newest) {
                if t >= span.before(newest) {
                    reasons.push(format!(
                        "within {}",
                        policy.keep_within.as_deref().unwrap_or_default()
                    ));
                }
            }
            out.push(Decision {
                id: c.id.clone(),
                time: c.time,
                host: c.host.clone(),
                keep: !reasons.is_empty(),
                reasons,
            });
        }
    }
    Ok(out)
}

/// Refuses a plan that removes every snapshot of a host that has some: no policy meant that
/// (restic's rules always keep a group's newest), so it is a wrong value or a clock gone wrong.
pub fn check_keeps_each_host(decisions: &[Decision]) -> Result<()> {
    let mut hosts: Vec<&str> = decisions.iter().map(|d| d.host.as_str()).collect();
    hosts.sort_unstable();
    hosts.dedup();
    for host in hosts {
        if !decisions.iter().any(|d| d.host == host && d.keep) {
            return Err(Error::Invalid(format!(
                "the retention policy would remove every snapshot of host {host:?}; refused, \
                 nothing was removed (see --dry-run). To remove them on purpose, name them: \
                 forget SNAPSHOT..."
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nightly(days: i64) -> Vec<Candidate> {
        let start = Local
            .with_ymd_and_hms(2026, 1, 1, 3, 0, 0)
            .unwrap()
            .timestamp();
        (0..days)
            .map(|d| Candidate {
                id: format!("{d:04}"),
                time: start + d * 86_400,
                written: 0,
                host: "opsi".into(),
            })
            .collect()
    }

    fn kept(d: &[Decision]) -> Vec<String> {
        let mut v: Vec<String> = d.iter().filter(|d| d.keep).map(|d| d.id.clone()).collect();
        v.sort();
        v
    }

    #[test]
    fn seven_daily_four_weekly_over_thirty_nights() {
        let p = Policy {
            keep_daily: Some(7),
            keep_weekly: Some(4),
            ..Policy::default()
        };
        let d = apply(&p, &nightly(30)).unwrap();
        let k = kept(&d);
        // The 7 newest days, plus the newest of each of the 4 newest ISO weeks (some overlap).
        for day in 23..30 {
            assert!(k.contains(&format!("{day:04}")), "day {day} kept");
        }
        let weekly: Vec<_> = d
            .iter()
            .filter(|d| d.reasons.iter().any(|r| r == "weekly snapshot"))
            .collect();
        assert_eq!(weekly.len(), 4);
        assert!(k.len() >= 7 && k.len() <= 11, "{k:?}");
        assert!(!k.contains(&"0000".to_string()));
    }

    #[test]
    fn keep_last_and_within() {
        let p = Policy {
            keep_last: Some(3),
            ..Policy::default()
        };
        assert_eq!(
            kept(&apply(&p, &nightly(10)).unwrap()),
            vec!["0007", "0008", "0009"]
        );
        let p = Policy {
            keep_within: Some("2d".into()),
            ..Policy::default()
        };
        assert_eq!(
            kept(&apply(&p, &nightly(10)).unwrap()),
            vec!["0007", "0008", "0009"]
        );
    }

    #[test]
    fn hosts_are_separate_and_empty_policy_refused() {
        let mut c = nightly(3);
        c.push(Candidate {
            id: "x".into(),
            time: 0,
            written: 0,
            host: "other".into(),
        });
        let p = Policy {
            keep_last: Some(1),
            ..Policy::default()
        };
        assert_eq!(kept(&apply(&p, &c).unwrap()), vec!["0002", "x"]);
        assert!(apply(&Policy::default(), &c).is_err());
        assert!(Span::parse("1x").is_err());
        assert_eq!(
            Span::parse("1y2m3d4h").unwrap(),
            Span {
                years: 1,
                months: 2,
                days: 3,
                hours: 4
            }
        );
    }

    #[test]
    fn policies_of_zeros_are_refused() {
        let c = nightly(3);
        for p in [
            Policy {
                keep_last: Some(0),
                ..Policy::default()
            },
            Policy {
                keep_daily: Some(0),
                keep_weekly: Some(0),
                ..Policy::default()
            },
            Policy {
                keep_hourly: Some(0),
                keep_monthly: Some(0),
                keep_yearly: Some(0),
                ..Policy::default()
            },
        ] {
            let e = apply(&p, &c).unwrap_err().to_string();
            assert!(e.contains("keeps nothing"), "{p:?}: {e}");
        }
        // A zero beside a real count is just an unused rule.
        let p = Policy {
            keep_last: Some(0),
            keep_daily: Some(1),
            ..Policy::default()
        };
        assert_eq!(kept(&apply(&p, &c).unwrap()), vec!["0002"]);
    }

    #[test]
    fn same_second_newest_is_the_one_written_last() {
        // The later-written snapshot has the smaller id: time alone ties, id alone is wrong.
        let c = vec![
            Candidate {
                id: "ff00".into(),
                time: 1_700_000_000,
                written: 1_700_000_000_100_000_000,
                host: "opsi".into(),
            },
            Candidate {
                id: "00ff".into(),
                time: 1_700_000_000,
                written: 1_700_000_000_900_000_000,
                host: "opsi".into(),
            },
        ];
        let p = Policy {
            keep_last: Some(1),
            ..Policy::default()
        };
        assert_eq!(kept(&apply(&p, &c).unwrap()), vec!["00ff"]);
    }

    #[test]
    fn a_plan_removing_a_whole_host_is_refused() {
        let d = |host: &str, keep: bool| Decision {
            id: format!("{host}{keep}"),
            time: 0,
            host: host.into(),
            keep,
            reasons: vec![],
        };
        assert!(check_keeps_each_host(&[d("a", true), d("a", false), d("b", true)]).is_ok());
        let e = check_keeps_each_host(&[d("a", true), d("b", false), d("b", false)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("every snapshot of host \"b\""), "{e}");
        assert!(check_keeps_each_host(&[]).is_ok());
    }
}
