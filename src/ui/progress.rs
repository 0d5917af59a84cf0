//! Progress of a running install, rendered in one place.
//!
//! The install core reports [`Event`]s and never prints. On a terminal a person watches: a
//! spinner per step, one per object while it is waited for (its message is the object's latest
//! readiness, so a slow wait says what it waits on), and finished lines marked ✓ or ✗. In a log
//! (no terminal, or `CI=true`) every event that mattered before spinners existed is one
//! timestamped line with exactly the old text, because scripts and tests read those lines.

use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Ui;

/// Something that happened during an install.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A step starts (`wave 0: …`, `onboarding`); the previous one is done.
    Step(&'a str),
    /// A line of information (`connected to …`, what happened to a secret).
    Note(&'a str),
    /// Something the user should act on or know of, although the run goes on (a lock lost, a
    /// record kept without its digest).
    Warning(&'a str),
    /// An object was applied: `change` is what applying it did (`created`, `configured (…)`).
    Applied { object: &'a str, change: &'a str },
    /// Waiting starts for these objects.
    Waiting(&'a [String]),
    /// An object waited for is not ready yet, and why (`0/1 ready, 0/1 updated`).
    NotReady { object: &'a str, why: &'a str },
    /// An object waited for is healthy.
    Healthy(&'a str),
}

impl Event<'_> {
    /// The line a log gets for this event, or `None` for events only a terminal shows.
    pub fn log_line(&self) -> Option<String> {
        match self {
            Event::Step(text) | Event::Note(text) => Some(text.to_string()),
            Event::Warning(text) => Some(format!("warning: {text}")),
            Event::Applied { object, change } => Some(format!("{object} {change}")),
            Event::Waiting(objects) => Some(format!("waiting for {}", objects.join(", "))),
            Event::NotReady { .. } => None,
            Event::Healthy(object) => Some(format!("{object} is healthy")),
        }
    }
}

/// Where progress goes: nowhere (`--quiet`), a log, or live spinners on a terminal.
pub struct Progress {
    mode: Mode,
}

enum Mode {
    Quiet,
    Log,
    Live(Box<Mutex<Live>>),
}

/// The spinners on screen. Finished lines are printed above them with `println`, so they stay
/// in order however many there are; only the running step and its waits are redrawn.
struct Live {
    multi: MultiProgress,
    ok: String,
    failed: String,
    bullet: String,
    warning: String,
    step: Option<StepBar>,
}

struct StepBar {
    title: String,
    bar: ProgressBar,
    changes: Vec<String>,
    waits: Vec<WaitBar>,
}

struct WaitBar {
    object: String,
    bar: ProgressBar,
    /// The latest readiness, shown on the ✗ line when the wait fails.
    why: Option<String>,
    healthy: bool,
}

impl Progress {
    pub fn new(ui: &Ui) -> Progress {
        let mode = if ui.quiet {
            Mode::Quiet
        } else if ui.live_progress() {
            Mode::Live(Box::new(Mutex::new(Live {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                ok: ui.added("✓"),
                failed: ui.error("✗"),
                bullet: ui.dim("•"),
                warning: ui.warning("warning:"),
                step: None,
            })))
        } else {
            Mode::Log
        };
        Progress { mode }
    }

    pub fn event(&self, event: Event<'_>) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Log => {
                if let Some(line) = event.log_line() {
                    let now = k8s_openapi::jiff::Timestamp::now().strftime("%H:%M:%S");
                    eprintln!("[{now}] {line}");
                }
            }
            Mode::Live(live) => live.lock().expect("progress lock").event(event),
        }
    }

    /// Marks the running step done (✓). Without this, dropping the display marks it failed.
    pub fn finish(&self) {
        if let Mode::Live(live) = &self.mode {
            live.lock().expect("progress lock").end_step(true);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Mode::Live(live) = &self.mode
            && let Ok(mut live) = live.lock()
        {
            live.end_step(false);
        }
    }
}

fn spinner(message: String) -> ProgressBar {
    let style = ProgressStyle::with_template("{spinner} {msg}")
        .expect("a valid template")
        .tick_strings(&["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏", " "]);
    let bar = ProgressBar::new_spinner()
        .with_style(style)
        .with_message(message);
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

impl Live {
    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Step(title) => {
                self.end_step(true);
                let bar = self.multi.add(spinner(title.to_string()));
                self.step = Some(StepBar {
                    title: title.to_string(),
                    bar,
                    changes: Vec::new(),
                    waits: Vec::new(),
                });
            }
            Event::Note(text) => self.println(format!("{} {text}", self.bullet)),
            Event::Warning(text) => self.println(format!("{} {text}", self.warning)),
            Event::Applied { object, change } => match &mut self.step {
                Some(step) => {
                    step.bar
                        .set_message(format!("{}: {object} {change}", step.title));
                    step.changes.push(change.to_string());
                }
                None => self.println(format!("{} {object} {change}", self.ok)),
            },
            Event::Waiting(objects) => {
                if let Some(step) = &mut self.step {
                    step.bar.set_message(format!("{}: waiting", step.title));
                    for object in objects {
                        let bar = self.multi.add(spinner(format!("waiting for {object}")));
                        step.waits.push(WaitBar {
                            object: object.clone(),
                            bar,
                            why: None,
                            healthy: false,
                        });
                    }
                }
            }
            Event::NotReady { object, why } => {
                if let Some(wait) = self.wait(object) {
                    wait.bar.set_message(format!("waiting for {object}: {why}"));
                    wait.why = Some(why.to_string());
                }
            }
            Event::Healthy(object) => {
                let ok = self.ok.clone();
                if let Some(wait) = self.wait(object) {
                    wait.healthy = true;
                    wait.bar
                        .set_style(ProgressStyle::with_template("{msg}").expect("valid"));
                    wait.bar
                        .finish_with_message(format!("  {ok} {object} is healthy"));
                }
            }
        }
    }

    fn wait(&mut self, object: &str) -> Option<&mut WaitBar> {
        self.step
            .as_mut()?
            .waits
            .iter_mut()
            .find(|w| w.object == object)
    }

    /// Replaces the running step's spinners with their final lines.
    fn end_step(&mut self, ok: bool) {
        let Some(step) = self.step.take() else {
            return;
        };
        let mark = if ok { &self.ok } else { &self.failed };
        let mut lines = vec![format!("{mark} {}{}", step.title, counts(&step.changes))];
        for wait in &step.waits {
            wait.bar.finish_and_clear();
            lines.push(match (wait.healthy, &wait.why) {
                (true, _) => format!("  {} {} is healthy", self.ok, wait.object),
                (false, Some(why)) => format!("  {} {}: {why}", self.failed, wait.object),
                (false, None) => format!("  {} {}: not ready", self.failed, wait.object),
            });
        }
        step.bar.finish_and_clear();
        self.println(lines.join("\n"));
    }

    fn println(&self, text: String) {
        // A terminal that went away is no reason to stop an install.
        let _ = self.multi.println(text);
    }
}

/// ` (3 created, 2 unchanged)`: what applying the step's objects did, in a few words.
fn counts(changes: &[String]) -> String {
    let mut counted: Vec<(&str, usize)> = Vec::new();
    for change in changes {
        let word = change.split(' ').next().unwrap_or_default();
        match counted.iter_mut().find(|(w, _)| *w == word) {
            Some((_, n)) => *n += 1,
            None => counted.push((word, 1)),
        }
    }
    if counted.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = counted.iter().map(|(w, n)| format!("{n} {w}")).collect();
    format!(" ({})", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_keep_the_lines_scripts_read() {
        let waiting = [
            "StatefulSet/db".to_string(),
            "ExternalSecret/auth".to_string(),
        ];
        let lines: Vec<Option<String>> = [
            Event::Step("wave 0: database and secrets"),
            Event::Applied {
                object: "Secret/db",
                change: "created",
            },
            Event::Waiting(&waiting),
            Event::NotReady {
                object: "StatefulSet/db",
                why: "0/1 ready",
            },
            Event::Healthy("StatefulSet/db"),
            Event::Note("connected to https://127.0.0.1:6443"),
        ]
        .iter()
        .map(Event::log_line)
        .collect();
        assert_eq!(
            lines,
            [
                Some("wave 0: database and secrets".to_string()),
                Some("Secret/db created".to_string()),
                Some("waiting for StatefulSet/db, ExternalSecret/auth".to_string()),
                None,
                Some("StatefulSet/db is healthy".to_string()),
                Some("connected to https://127.0.0.1:6443".to_string()),
            ]
        );
    }

    #[test]
    fn a_step_line_counts_what_applying_did() {
        let changes = [
            "created",
            "unchanged",
            "created",
            "configured (spec.replicas)",
        ]
        .map(String::from);
        assert_eq!(counts(&changes), " (2 created, 1 unchanged, 1 configured)");
        assert_eq!(counts(&[]), "");
    }
}
