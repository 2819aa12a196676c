//! A check's line and how a run's lines are printed: the marks (✓ passes,
//! ! a warning, · information, ✗ fails with the fix in one sentence), the
//! report with its exit status, and the sink that prints each line the
//! moment its check is made.
//!
//! Everything printed passes through here, so [`printable`] is here too:
//! values that come from the issuer or the settings go on one terminal
//! line, never as control characters.

use std::fmt;
use std::io::Write;

/// Exit status when a check fails.
pub const EXIT_FAILED: u8 = 1;

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Pass,
    /// Worth knowing; does not fail the run.
    Warn,
    /// A report (claims, cache lifetime), neither good nor bad.
    Info,
    Fail,
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub status: Status,
    pub line: String,
    /// For a failure or a warning: what to do, in one sentence.
    pub fix: Option<String>,
}

impl Check {
    pub fn pass(line: impl Into<String>) -> Self {
        Check {
            status: Status::Pass,
            line: line.into(),
            fix: None,
        }
    }

    pub fn info(line: impl Into<String>) -> Self {
        Check {
            status: Status::Info,
            line: line.into(),
            fix: None,
        }
    }

    pub fn warn(line: impl Into<String>, fix: impl Into<String>) -> Self {
        Check {
            status: Status::Warn,
            line: line.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn fail(line: impl Into<String>, fix: impl Into<String>) -> Self {
        Check {
            status: Status::Fail,
            line: line.into(),
            fix: Some(fix.into()),
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = match self.status {
            Status::Pass => "✓",
            Status::Warn => "!",
            Status::Info => "·",
            Status::Fail => "✗",
        };
        write!(f, "{mark} {}", self.line)?;
        match (&self.fix, self.status) {
            (Some(fix), Status::Fail) => write!(f, " — fix: {fix}"),
            (Some(fix), _) => write!(f, " — {fix}"),
            (None, _) => Ok(()),
        }
    }
}

/// Every check of one run, in order.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.status == Status::Fail)
    }

    /// 0 when nothing failed, else [`EXIT_FAILED`].
    pub fn exit_code(&self) -> u8 {
        if self.failed() {
            EXIT_FAILED
        } else {
            0
        }
    }

    /// The lines as printed.
    pub fn lines(&self) -> Vec<String> {
        self.checks.iter().map(ToString::to_string).collect()
    }
}

/// Prints each check as it is made (a slow issuer shows where it is slow)
/// and keeps it for the report.
pub(super) struct Sink<'a> {
    out: &'a mut dyn Write,
    report: Report,
}

impl<'a> Sink<'a> {
    pub(super) fn new(out: &'a mut dyn Write) -> Self {
        Sink {
            out,
            report: Report::default(),
        }
    }

    pub(super) fn push(&mut self, check: Check) {
        // A closed stdout must not stop the checks; the exit status still
        // tells.
        let _ = writeln!(self.out, "{check}");
        let _ = self.out.flush();
        self.report.checks.push(check);
    }

    pub(super) fn push_all(&mut self, checks: impl IntoIterator<Item = Check>) {
        for check in checks {
            self.push(check);
        }
    }

    pub(super) fn into_report(self) -> Report {
        self.report
    }
}

/// `text` safe for one terminal line: control characters replaced, at most
/// 200 characters.
pub(super) fn printable(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(200)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().nth(200).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_the_mark_and_the_fix() {
        assert_eq!(Check::pass("fine").to_string(), "✓ fine");
        assert_eq!(Check::info("note").to_string(), "· note");
        assert_eq!(Check::warn("odd", "look").to_string(), "! odd — look");
        assert_eq!(
            Check::fail("broken", "mend it").to_string(),
            "✗ broken — fix: mend it"
        );
        let report = Report {
            checks: vec![Check::pass("a"), Check::warn("b", "c")],
        };
        assert_eq!(report.exit_code(), 0);
        let report = Report {
            checks: vec![Check::pass("a"), Check::fail("b", "c")],
        };
        assert_eq!(report.exit_code(), EXIT_FAILED);
    }
}
