//! The error a bad profile produces: where (file:line:column or the `--set` argument), which
//! field, what is wrong, and a hint.

use miette::{Diagnostic, NamedSource, SourceSpan};

use super::BUILTIN;

#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{origin}: {path}: {message}")]
#[diagnostic(code(paperclipctl::profile))]
pub struct ProfileError {
    /// `file.yaml:12:5`, `--set app.port=x`, or the file name alone.
    pub origin: String,
    /// The field path in the profile, e.g. `app.resources.limits.memory` (`.` for the document).
    pub path: String,
    pub message: String,
    #[help]
    pub help: Option<String>,
    #[source_code]
    source_code: Option<NamedSource<String>>,
    #[label("here")]
    span: Option<SourceSpan>,
}

impl ProfileError {
    pub(super) fn new(origin: String, path: String, message: String) -> Self {
        let help = hint(&message);
        ProfileError {
            origin,
            path,
            message,
            help,
            source_code: None,
            span: None,
        }
    }

    /// Points the error at byte `offset` (line, column from 1) of `text` read from `file`.
    pub(super) fn located(
        mut self,
        file: &str,
        text: &str,
        offset: usize,
        line: usize,
        col: usize,
    ) -> Self {
        self.origin = format!("{file}:{line}:{col}");
        self.source_code = Some(NamedSource::new(file, text.to_string()));
        self.span = Some(SourceSpan::from((offset, 0)));
        self
    }

    pub(super) fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub(super) fn from_serde(
        file: &str,
        text: &str,
        err: serde_path_to_error::Error<serde_yaml_ng::Error>,
    ) -> Self {
        let path = display_path(&err.path().to_string());
        let inner = err.into_inner();
        let message = strip_location(&inner.to_string());
        // serde_yaml also puts the (parent's) path in front of its message; we print it once.
        let message = match message.split_once(": ") {
            Some((prefix, rest)) if !prefix.contains(' ') && path.starts_with(prefix) => {
                rest.to_string()
            }
            _ => message,
        };
        let error = ProfileError::new(file.to_string(), path, message);
        match inner.location() {
            Some(l) => error.located(file, text, l.index(), l.line(), l.column()),
            None => error,
        }
    }

    pub(super) fn unreadable(path: &str, err: &std::io::Error) -> Self {
        ProfileError::new(
            path.to_string(),
            ".".into(),
            format!("cannot read the profile: {err}"),
        )
        .with_help("pass a built-in profile name or the path of a readable YAML file")
    }

    pub(super) fn unknown_builtin(name: &str) -> Self {
        let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
        let help = match closest(name, &names) {
            Some(best) => format!(
                "did you mean `{best}`? built-in profiles: {}",
                names.join(", ")
            ),
            None => format!(
                "built-in profiles: {}; or pass a path to a YAML file",
                names.join(", ")
            ),
        };
        ProfileError::new(
            format!("--profile {name}"),
            ".".into(),
            format!("no built-in profile named {name:?} and no such file"),
        )
        .with_help(help)
    }
}

/// serde_path_to_error writes `?` for an unknown position and `.` for the root.
fn display_path(path: &str) -> String {
    if path.is_empty() || path == "?" {
        ".".into()
    } else {
        path.to_string()
    }
}

/// serde_yaml appends " at line L column C"; we print the location in front instead.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// A hint for serde's own messages: "did you mean" for unknown keys and enum variants.
fn hint(message: &str) -> Option<String> {
    let (kind, rest) = if let Some(rest) = message.strip_prefix("unknown field `") {
        ("key", rest)
    } else if let Some(rest) = message.strip_prefix("unknown variant `") {
        ("value", rest)
    } else {
        return None;
    };
    let (given, rest) = rest.split_once('`')?;
    let expected: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    if expected.is_empty() {
        return Some(format!("this {kind} takes no fields here"));
    }
    Some(match closest(given, &expected) {
        Some(best) => format!("did you mean `{best}`?"),
        None => format!("valid {kind}s here: {}", expected.join(", ")),
    })
}

/// The candidate most similar to `given`, when it is similar enough to be a likely typo.
pub(super) fn closest<'a>(given: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let given = given.to_lowercase();
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(&given, &c.to_lowercase()), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}
