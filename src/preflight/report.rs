//! The result of a preflight run: one row per planned check, for people (an aligned table) and
//! for machines (`--output json`).

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    /// The install can go on, but something deserves a look (an earlier OOMKilled run).
    Warn,
    /// The install would fail or misbehave: nothing may be applied.
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        }
    }
}

/// What one check found: the status, what was seen, and (unless it passed) one line saying
/// what to change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Outcome {
    pub fn pass(detail: impl Into<String>) -> Outcome {
        Outcome {
            status: Status::Pass,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn warn(detail: impl Into<String>, fix: impl Into<String>) -> Outcome {
        Outcome {
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn fail(detail: impl Into<String>, fix: impl Into<String>) -> Outcome {
        Outcome {
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// One row of the report: the planned check and its outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub id: String,
    pub title: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub checks: Vec<Row>,
}

impl Report {
    /// Whether any check failed: the install must stop before writing anything.
    pub fn failed(&self) -> bool {
        self.checks.iter().any(|r| r.outcome.status == Status::Fail)
    }

    /// The row of check `id`, if it was planned.
    pub fn get(&self, id: &str) -> Option<&Row> {
        self.checks.iter().find(|r| r.id == id)
    }

    /// A plain table, one check a row, the fix indented under a row that needs one:
    ///
    /// ```text
    /// STATUS  CHECK          DETAIL
    /// pass    api-access     Kubernetes v1.33.13 answers; …
    /// FAIL    image-app      image … offers linux/arm64 only; nodes gpu-1 (amd64) need linux/amd64
    ///                        fix: …
    /// ```
    pub fn to_text(&self) -> String {
        let width = self
            .checks
            .iter()
            .map(|r| r.id.len())
            .chain(["CHECK".len()])
            .max()
            .unwrap_or_default();
        let mut out = format!("{:<6}  {:<width$}  DETAIL\n", "STATUS", "CHECK");
        for row in &self.checks {
            let outcome = &row.outcome;
            out.push_str(&format!(
                "{:<6}  {:<width$}  {}\n",
                outcome.status.label(),
                row.id,
                outcome.detail
            ));
            if let Some(fix) = &outcome.fix {
                out.push_str(&format!("{:<6}  {:<width$}  fix: {fix}\n", "", ""));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let row = |id: &str, outcome| Row {
            id: id.into(),
            title: format!("{id} title"),
            outcome,
        };
        Report {
            checks: vec![
                row("api-access", Outcome::pass("Kubernetes v1.33.13 answers")),
                row(
                    "memory-headroom",
                    Outcome::warn("was OOMKilled at limit 2Gi", "raise it"),
                ),
            ],
        }
    }

    #[test]
    fn text_is_an_aligned_table_with_fixes_under_their_row() {
        assert_eq!(
            report().to_text(),
            "STATUS  CHECK            DETAIL\n\
             pass    api-access       Kubernetes v1.33.13 answers\n\
             warn    memory-headroom  was OOMKilled at limit 2Gi\n\
             \x20                        fix: raise it\n"
        );
    }

    #[test]
    fn warnings_do_not_fail_a_run_and_json_is_flat() {
        let mut report = report();
        assert!(!report.failed());
        report.checks[0].outcome = Outcome::fail("forbidden: list nodes", "grant it");
        assert!(report.failed());
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["checks"][0]["status"], "fail");
        assert_eq!(json["checks"][0]["detail"], "forbidden: list nodes");
        assert_eq!(json["checks"][0]["fix"], "grant it");
        assert_eq!(json["checks"][1]["id"], "memory-headroom");
    }
}
