//! The monitoring-plugin output of `health`: the states with their exit codes, and the one
//! status line `OPSI-BACKUP <STATE> - <text> | <perfdata>` (Nagios plugin guidelines).

/// A check's state; the discriminant is the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Ok = 0,
    Warning = 1,
    Critical = 2,
    Unknown = 3,
}

impl State {
    pub(super) fn name(self) -> &'static str {
        match self {
            State::Ok => "OK",
            State::Warning => "WARNING",
            State::Critical => "CRITICAL",
            State::Unknown => "UNKNOWN",
        }
    }

    /// The order for the overall state (the plugins' `max_state_alt`): a real problem
    /// outranks a part that could not be checked.
    fn rank(self) -> u8 {
        match self {
            State::Ok => 0,
            State::Unknown => 1,
            State::Warning => 2,
            State::Critical => 3,
        }
    }

    /// `Critical` above `critical`, `Warning` above `warning`, else `Ok`.
    pub(super) fn of_level<T: PartialOrd>(
        value: T,
        warning: Option<T>,
        critical: Option<T>,
    ) -> State {
        if critical.is_some_and(|c| value > c) {
            State::Critical
        } else if warning.is_some_and(|w| value > w) {
            State::Warning
        } else {
            State::Ok
        }
    }
}

/// One part of the check: its state, its words (none when there is nothing to say) and its
/// performance data (`label=value[unit];warn;crit;min;max`).
#[derive(Debug)]
pub(super) struct Part {
    pub(super) state: State,
    pub(super) text: Option<String>,
    pub(super) perf: Vec<String>,
}

/// The overall state (the worst part's) and the status line.
pub(super) fn line(parts: &[Part]) -> (State, String) {
    let state = parts
        .iter()
        .map(|p| p.state)
        .max_by_key(|s| s.rank())
        .unwrap_or(State::Unknown);
    let text: Vec<&str> = parts.iter().filter_map(|p| p.text.as_deref()).collect();
    let perf: Vec<&str> = parts
        .iter()
        .flat_map(|p| p.perf.iter().map(String::as_str))
        .collect();
    let mut line = format!("OPSI-BACKUP {} - {}", state.name(), text.join(", "));
    if !perf.is_empty() {
        line.push_str(" | ");
        line.push_str(&perf.join(" "));
    }
    (state, line)
}

/// The line of a check that could not look at all.
pub(super) fn failed(state: State, message: &str) -> String {
    // One line: a message with line breaks would be cut by the monitoring system.
    let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
    format!("OPSI-BACKUP {} - {message}", state.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_part_decides_and_the_line_has_perfdata() {
        let part = |state, text: &str, perf: &str| Part {
            state,
            text: Some(text.into()),
            perf: vec![perf.into()],
        };
        let (state, l) = line(&[
            part(State::Ok, "a", "a=1s"),
            part(State::Unknown, "b", "b=U"),
            part(State::Warning, "c", "c=3"),
        ]);
        assert_eq!(state, State::Warning);
        assert_eq!(l, "OPSI-BACKUP WARNING - a, b, c | a=1s b=U c=3");
        assert_eq!(State::of_level(5, Some(4), Some(6)), State::Warning);
        assert_eq!(State::of_level(7, Some(4), None::<i32>), State::Warning);
        assert_eq!(State::of_level(7, Some(4), Some(6)), State::Critical);
        assert_eq!(failed(State::Unknown, "x\ny"), "OPSI-BACKUP UNKNOWN - x y");
    }
}
