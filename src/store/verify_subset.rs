//! Rolling verification: which packs a nightly `verify` reads back when it is not to read them
//! all. Metadata (config.json, every snapshot file, the index against the packs) is checked in
//! full every time; only the reading back of pack data is shared out over nights. Spec:
//! `store-format/README.md`, section "State files" (`state/pack-verified.json`).
//!
//! - `n/m` (restic's `--read-data-subset n/m`): the packs whose name falls in slice n of m. A
//!   pack's slice depends on its name alone, so `1/7` … `7/7` on seven nights read every pack.
//! - `P%` or a size (`500M`, `2G`): that share of the packs, or packs up to that many stored
//!   bytes, verified longest ago first (never verified first), so the whole repository is
//!   covered within 100/P nights, or within its size divided by the nightly size.
//! - A time limit (`--max-duration`) stops starting packs once it is spent, in the same order.

use std::collections::HashMap;
use std::fmt;

/// Which packs a verify reads back.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum DataSubset {
    /// Every pack.
    #[default]
    All,
    /// Slice `n` of `m` (1-based), by pack name.
    Slice { n: u32, m: u32 },
    /// This share of the packs (0 < share <= 1), verified longest ago first.
    Share(f64),
    /// Packs up to this many stored bytes (at least one pack), verified longest ago first.
    Bytes(u64),
}

impl DataSubset {
    /// Parses `n/m`, `P%` or a size with a binary unit (`K`, `M`, `G`, `T`; `B` or none for
    /// bytes).
    pub fn parse(s: &str) -> Result<DataSubset, String> {
        let s = s.trim();
        let bad = || {
            format!(
                "read-data-subset '{s}': give n/m (e.g. 1/7), a percentage (e.g. 15%) or a size \
                 (e.g. 2G)"
            )
        };
        if let Some((n, m)) = s.split_once('/') {
            let (n, m): (u32, u32) = (
                n.trim().parse().map_err(|_| bad())?,
                m.trim().parse().map_err(|_| bad())?,
            );
            if m == 0 || n == 0 || n > m {
                return Err(format!("read-data-subset '{s}': n/m needs 1 <= n <= m"));
            }
            return Ok(DataSubset::Slice { n, m });
        }
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(format!(
                    "read-data-subset '{s}': a percentage above 0 and at most 100"
                ));
            }
            return Ok(DataSubset::Share(p / 100.0));
        }
        let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let unit = &s[digits.len()..];
        let factor: u64 = match unit.to_ascii_uppercase().as_str() {
            "" | "B" => 1,
            "K" | "KIB" => 1 << 10,
            "M" | "MIB" => 1 << 20,
            "G" | "GIB" => 1 << 30,
            "T" | "TIB" => 1 << 40,
            _ => return Err(bad()),
        };
        let n: f64 = digits.trim().parse().map_err(|_| bad())?;
        if n.is_nan() || n <= 0.0 {
            return Err(bad());
        }
        Ok(DataSubset::Bytes((n * factor as f64) as u64))
    }

    /// Chooses from `packs` (name, stored bytes) the ones to read back, in the order to read
    /// them. `verified` holds when each pack was last read back (Unix seconds).
    pub(crate) fn choose(
        self,
        packs: &[(String, u64)],
        verified: &HashMap<String, i64>,
    ) -> Vec<String> {
        match self {
            DataSubset::Slice { n, m } => packs
                .iter()
                .filter(|(name, _)| slice_of(name, m) == n - 1)
                .map(|(name, _)| name.clone())
                .collect(),
            DataSubset::All | DataSubset::Share(_) | DataSubset::Bytes(_) => {
                let mut order: Vec<&(String, u64)> = packs.iter().collect();
                order.sort_by_key(|(name, _)| (verified.get(name).copied().unwrap_or(0), name));
                let take = match self {
                    DataSubset::Share(share) => {
                        ((packs.len() as f64 * share).ceil() as usize).max(1)
                    }
                    DataSubset::Bytes(limit) => {
                        let mut sum = 0u64;
                        order
                            .iter()
                            .take_while(|(_, bytes)| {
                                let first = sum == 0;
                                sum = sum.saturating_add(*bytes);
                                first || sum <= limit
                            })
                            .count()
                    }
                    _ => packs.len(),
                };
                order
                    .into_iter()
                    .take(take)
                    .map(|(name, _)| name.clone())
                    .collect()
            }
        }
    }
}

impl fmt::Display for DataSubset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSubset::All => write!(f, "all"),
            DataSubset::Slice { n, m } => write!(f, "{n}/{m}"),
            DataSubset::Share(s) => write!(f, "{}%", s * 100.0),
            DataSubset::Bytes(b) => write!(f, "{b} bytes"),
        }
    }
}

/// The slice (0-based, of `m`) a pack falls in: from the BLAKE3 of its name, so slices are
/// even whatever the names look like, and stable from night to night.
fn slice_of(name: &str, m: u32) -> u32 {
    let h = blake3::hash(name.as_bytes());
    let b = h.as_bytes();
    u32::from_le_bytes([b[0], b[1], b[2], b[3]]) % m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packs(n: usize) -> Vec<(String, u64)> {
        (0..n).map(|i| (format!("{i:064x}"), 100)).collect()
    }

    #[test]
    fn slices_cover_every_pack_once() {
        let all = packs(200);
        let none = HashMap::new();
        let mut seen: Vec<String> = (1..=7)
            .flat_map(|n| DataSubset::Slice { n, m: 7 }.choose(&all, &none))
            .collect();
        seen.sort();
        let mut want: Vec<String> = all.iter().map(|p| p.0.clone()).collect();
        want.sort();
        assert_eq!(seen, want);
    }

    #[test]
    fn shares_and_sizes_read_the_longest_unverified_first() {
        let all = packs(10);
        let mut verified = HashMap::new();
        for (i, (name, _)) in all.iter().enumerate() {
            verified.insert(name.clone(), 1000 - i as i64); // the last pack is the oldest
        }
        verified.remove(&all[4].0); // never verified: first of all
        let chosen = DataSubset::Share(0.2).choose(&all, &verified);
        assert_eq!(chosen, [all[4].0.clone(), all[9].0.clone()]);
        let chosen = DataSubset::Bytes(350).choose(&all, &verified);
        assert_eq!(chosen.len(), 3);
        // A size below one pack still reads one.
        assert_eq!(DataSubset::Bytes(1).choose(&all, &verified).len(), 1);
    }

    #[test]
    fn parses_what_admins_type() {
        assert_eq!(
            DataSubset::parse("1/7"),
            Ok(DataSubset::Slice { n: 1, m: 7 })
        );
        assert_eq!(DataSubset::parse("15%"), Ok(DataSubset::Share(0.15)));
        assert_eq!(DataSubset::parse("2G"), Ok(DataSubset::Bytes(2 << 30)));
        assert_eq!(DataSubset::parse("512M"), Ok(DataSubset::Bytes(512 << 20)));
        for bad in ["0/7", "8/7", "1/0", "0%", "150%", "x", "2Q", "-1G", ""] {
            assert!(DataSubset::parse(bad).is_err(), "{bad}");
        }
    }
}
