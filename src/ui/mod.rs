//! Everything printed for people: colors (off without a TTY, with --no-color or NO_COLOR),
//! quiet/verbose levels, and the error report style.

use std::io::{IsTerminal, Write};

use anstyle::{AnsiColor, Style};

use crate::cli::{Global, Output};

pub mod progress;

pub struct Ui {
    color: bool,
    pub quiet: bool,
    pub verbose: u8,
    pub output: Output,
}

/// Colors only for a terminal, and never when the user said no (flag or NO_COLOR, any value).
fn color_enabled(global: &Global, terminal: bool) -> bool {
    let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    terminal && !global.no_color && !no_color_env
}

impl Ui {
    pub fn new(global: &Global) -> Self {
        Ui {
            color: color_enabled(global, std::io::stdout().is_terminal()),
            quiet: global.quiet,
            verbose: global.verbose,
            output: global.output,
        }
    }

    fn paint(&self, style: Style, text: &str) -> String {
        if self.color {
            format!("{style}{text}{style:#}")
        } else {
            text.to_string()
        }
    }

    pub fn heading(&self, text: &str) -> String {
        self.paint(Style::new().bold(), text)
    }

    pub fn added(&self, text: &str) -> String {
        self.paint(AnsiColor::Green.on_default(), text)
    }

    pub fn warning(&self, text: &str) -> String {
        self.paint(AnsiColor::Yellow.on_default().bold(), text)
    }

    pub fn error(&self, text: &str) -> String {
        self.paint(AnsiColor::Red.on_default().bold(), text)
    }

    pub fn dim(&self, text: &str) -> String {
        self.paint(Style::new().dimmed(), text)
    }

    /// Writes the command's result to stdout.
    pub fn print(&self, text: &str) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()
    }

    /// Whether a person can answer prompts: both ends are a terminal and this is not CI.
    pub fn interactive(&self) -> bool {
        std::io::stdin().is_terminal() && std::io::stderr().is_terminal() && !is_ci()
    }

    /// Whether progress is drawn live (spinners) rather than logged: stderr is a terminal and
    /// this is not CI, whose logs must stay plain, timestamped lines.
    pub fn live_progress(&self) -> bool {
        std::io::stderr().is_terminal() && !is_ci()
    }

    /// A note for people on stderr, dropped with --quiet.
    pub fn note(&self, text: &str) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }
}

/// CI=true (or 1): a log is read later, nobody answers prompts.
fn is_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| v == "true" || v == "1")
}

/// Sets how errors are drawn: miette's report with color and Unicode only on a terminal.
pub fn install_error_style(global: &Global) {
    let terminal = std::io::stderr().is_terminal();
    let color = color_enabled(global, terminal);
    let _ = miette::set_hook(Box::new(move |_| {
        Box::new(
            miette::MietteHandlerOpts::new()
                .color(color)
                .unicode(terminal)
                .terminal_links(false)
                .wrap_lines(terminal)
                .build(),
        )
    }));
}

/// A size as people read it: `512 B`, `700 KiB`, `1.5 MiB`, `5.0 GiB` (a tenth of a unit from
/// MiB up; below that, fractions are noise).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit < 2 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
