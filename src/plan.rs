//! A plan: the ordered steps of an operation, each saying what it would do. Commands build a plan
//! first and show it; dry-run output therefore comes from the same code that decides the work.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub title: String,
    /// What the step would do, one line each, as shown by `--dry-run`.
    pub dry_run: Vec<String>,
}

impl Step {
    pub fn new(title: impl Into<String>) -> Self {
        Step {
            title: title.into(),
            dry_run: Vec::new(),
        }
    }

    pub fn line(mut self, line: impl Into<String>) -> Self {
        self.dry_run.push(line.into());
        self
    }

    pub fn lines(mut self, lines: impl IntoIterator<Item = String>) -> Self {
        self.dry_run.extend(lines);
        self
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub steps: Vec<Step>,
}
