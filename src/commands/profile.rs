//! `paperclipctl profile show|list`.

use crate::cli::{Global, Output, ProfileCommand};
use crate::error::Result;
use crate::profile::BUILTIN;
use crate::ui::Ui;

pub fn run(global: &Global, command: &ProfileCommand, ui: &Ui) -> Result<()> {
    match command {
        ProfileCommand::Show => {
            let loaded = super::load_profile(global)?;
            let text = match ui.output {
                Output::Json => serde_json::to_string_pretty(&loaded.profile)? + "\n",
                Output::Text | Output::Yaml => {
                    let header = format!("# {} (every default and --set applied)\n", loaded.origin);
                    header + &serde_yaml_ng::to_string(&loaded.profile)?
                }
            };
            ui.print(&text)?;
        }
        ProfileCommand::List => {
            let names: Vec<&str> = BUILTIN.iter().map(|(name, _)| *name).collect();
            let text = match ui.output {
                Output::Json => serde_json::to_string_pretty(&names)? + "\n",
                Output::Text | Output::Yaml => names.join("\n") + "\n",
            };
            ui.print(&text)?;
        }
    }
    Ok(())
}
