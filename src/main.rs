use std::process::ExitCode;

use clap::Parser;
use paperclipctl::{cli::Cli, ui};

fn main() -> ExitCode {
    let cli = Cli::parse();
    ui::install_error_style(&cli.global);
    match paperclipctl::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let code = error.exit_code();
            eprintln!("{:?}", miette::Report::new(error));
            ExitCode::from(code)
        }
    }
}
