//! The thresholds of `health` as people write them: ages (`26h`, `8d`, `90min`) and free
//! space (`10%` or a size, `5G`), and ages written back the same way.

/// Free space below which a state is raised.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Space {
    /// Percent of the file system's size.
    Percent(f64),
    Bytes(u64),
}

/// An age: a number with a unit `s`, `m`/`min`, `h`, `d` or `w` (seconds without one).
pub(in crate::cli) fn duration(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not an age like 26h, 8d, 90min or 3600s"))?;
    let per = match unit.trim() {
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("{s:?}: unknown unit (use s, min, h, d or w)")),
    };
    n.checked_mul(per)
        .ok_or_else(|| format!("{s:?} is too long"))
}

/// Free space: `10%`, or a size with a binary unit `K`, `M`, `G`, `T` (`5G`, `500MiB`).
pub(super) fn space(s: &str) -> Result<Space, String> {
    let t = s.trim();
    let bad = || format!("{s:?} is not a share like 10% nor a size like 5G");
    if let Some(p) = t.strip_suffix('%') {
        let p: f64 = p.trim().parse().map_err(|_| bad())?;
        return if (0.0..=100.0).contains(&p) {
            Ok(Space::Percent(p))
        } else {
            Err(bad())
        };
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let unit = unit.trim().trim_end_matches("iB").trim_end_matches('B');
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(bad()),
    };
    n.checked_mul(1 << shift).map(Space::Bytes).ok_or_else(bad)
}

/// An age for people, in its largest unit that keeps two digits: 45s, 90min, 30h, 9d.
pub(super) fn age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 120 * 60 => format!("{}min", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// A threshold for people, exactly: in its largest unit that divides it (50h, not 2d).
pub(super) fn exact(secs: u64) -> String {
    match secs {
        s if s > 0 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s > 0 && s % 60 == 0 => format!("{}min", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_spaces_parse_and_print() {
        assert_eq!(duration("26h"), Ok(93_600));
        assert_eq!(duration("8d"), Ok(691_200));
        assert_eq!(duration("90min"), Ok(5_400));
        assert_eq!(duration("1s"), Ok(1));
        assert_eq!(duration("3600"), Ok(3_600));
        assert!(duration("3x").is_err() && duration("h").is_err());
        assert_eq!(space("10%"), Ok(Space::Percent(10.0)));
        assert_eq!(space("5G"), Ok(Space::Bytes(5 << 30)));
        assert_eq!(space("500MiB"), Ok(Space::Bytes(500 << 20)));
        assert!(space("120%").is_err() && space("5Q").is_err());
        assert_eq!(age(45), "45s");
        assert_eq!(age(5_400), "90min");
        assert_eq!(age(93_600), "26h");
        assert_eq!(age(691_200), "8d");
        assert_eq!(exact(180_000), "50h");
        assert_eq!(exact(691_200), "8d");
        assert_eq!(exact(5_400), "90min");
        assert_eq!(exact(61), "61s");
    }
}
