//! `paperclipctl plan`: render, lint and show the install plan, touching nothing.

use crate::cli::Global;
use crate::error::Result;
use crate::ui::Ui;

pub fn run(global: &Global, ui: &Ui) -> Result<()> {
    super::preview::show(global, ui, None)
}
