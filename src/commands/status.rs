//! `paperclipctl status`: the state of the installed release; exits non-zero when unhealthy.

use super::session::Session;
use crate::cli::{Global, Output};
use crate::error::Result;
use crate::status;
use crate::ui::Ui;

pub fn run(global: &Global, ui: &Ui) -> Result<()> {
    let namespace = super::namespace(global)?;
    super::block_on(async {
        let session = Session::for_reading(global, namespace, ui).await?;
        let report = status::read(session.client(), &session.namespace).await?;
        let text = match ui.output {
            Output::Json => serde_json::to_string_pretty(&report)? + "\n",
            Output::Text | Output::Yaml => report.to_text(),
        };
        ui.print(&text)?;
        report.verdict()
    })
}
