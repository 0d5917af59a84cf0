//! Values the user hands in for keys Infisical does not have yet: environment variables named
//! like the keys, and a `--secret-file` of `KEY=VALUE` lines.
//!
//! The file parser is written here rather than taken from a dotenv crate because its errors must
//! never quote the line: a malformed line is usually a pasted value. Errors say `file:line` and
//! what is wrong, nothing more.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::profile::model::Secrets;

use super::error::SecretsError;
use super::value::SecretValue;

/// Where a value that paperclipctl writes comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Source {
    /// Random bytes from the operating system (keys marked `generate: true`).
    Generated,
    /// The environment variable of the same name.
    Environment,
    /// A line of the `--secret-file`.
    File { path: PathBuf },
    /// Asked for at the terminal.
    Prompt,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Generated => f.write_str("generated"),
            Source::Environment => f.write_str("from the environment"),
            Source::File { path } => write!(f, "from {}", path.display()),
            Source::Prompt => f.write_str("from a prompt"),
        }
    }
}

/// The values provided for the profile's keys, each with its source. The environment wins over
/// the file, as with every dotenv tool: an export is the more deliberate, more recent choice.
/// Empty values count as not provided.
#[derive(Debug, Clone, Default)]
pub struct Provided {
    values: BTreeMap<String, (SecretValue, Source)>,
}

impl Provided {
    /// Reads the variables named like the profile's keys through `env` (pass
    /// `|name| std::env::var(name).ok()`) and, when given, the secret file.
    pub fn gather(
        secrets: &Secrets,
        secret_file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Provided, SecretsError> {
        let mut provided = Provided::default();
        if let Some(path) = secret_file {
            let text = std::fs::read(path).map_err(|e| SecretsError::SecretFileUnreadable {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?;
            let text = String::from_utf8(text).map_err(|_| SecretsError::SecretFile {
                path: path.to_path_buf(),
                line: 0,
                problem: "the file is not UTF-8 text".into(),
            })?;
            for (key, value) in parse_secret_file(path, &text)? {
                let source = Source::File {
                    path: path.to_path_buf(),
                };
                provided.insert(key, value, source);
            }
        }
        for key in secrets.external_secrets.iter().flat_map(|es| &es.keys) {
            if let Some(value) = env(key.remote.as_str()) {
                provided.insert(
                    key.remote.to_string(),
                    SecretValue::new(value),
                    Source::Environment,
                );
            }
        }
        Ok(provided)
    }

    fn insert(&mut self, key: String, value: SecretValue, source: Source) {
        if !value.is_empty() {
            self.values.insert(key, (value, source));
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&(SecretValue, Source)> {
        self.values.get(key)
    }
}

/// Parses `KEY=VALUE` lines: blank lines and `#` comments are skipped, `export ` is allowed in
/// front, values may be single-quoted (literal) or double-quoted (`\n`, `\"`, `\\` escapes), and
/// an unquoted value ends at ` #`. A key defined twice is an error, not a silent override.
pub(crate) fn parse_secret_file(
    path: &Path,
    text: &str,
) -> Result<Vec<(String, SecretValue)>, SecretsError> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let error = |problem: &str| SecretsError::SecretFile {
            path: path.to_path_buf(),
            line: number,
            problem: problem.to_string(),
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, value)) = line.split_once('=') else {
            return Err(error("expected KEY=VALUE"));
        };
        let key = key.trim();
        if !is_key(key) {
            return Err(error(
                "expected KEY=VALUE with a KEY of letters, digits and '_' (not starting with a digit)",
            ));
        }
        let value = parse_value(value.trim()).map_err(&error)?;
        if let Some(first) = seen.insert(key.to_string(), number) {
            return Err(error(&format!("{key} is already set on line {first}")));
        }
        entries.push((key.to_string(), SecretValue::new(value)));
    }
    Ok(entries)
}

fn is_key(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn parse_value(raw: &str) -> Result<String, &'static str> {
    let (value, rest) = if let Some(body) = raw.strip_prefix('\'') {
        let end = body
            .find('\'')
            .ok_or("the single quote is not closed on this line")?;
        (body[..end].to_string(), &body[end + 1..])
    } else if let Some(body) = raw.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = body.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("the double quote is not closed on this line"),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next().map(|(_, c)| c) {
                    Some('n') => value.push('\n'),
                    Some('t') => value.push('\t'),
                    Some(c @ ('"' | '\\' | '$')) => value.push(c),
                    _ => {
                        return Err(
                            "unknown escape in a double-quoted value (use \\n, \\\", \\\\)",
                        );
                    }
                },
                Some((_, c)) => value.push(c),
            }
        };
        (value, &body[end + 1..])
    } else {
        let value = match raw.find(" #") {
            Some(comment) => &raw[..comment],
            None => raw,
        };
        return Ok(value.trim_end().to_string());
    };
    let rest = rest.trim_start();
    if rest.is_empty() || rest.starts_with('#') {
        Ok(value)
    } else {
        Err("unexpected text after the closing quote")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
        parse_secret_file(Path::new("secrets.env"), text)
            .map(|entries| {
                entries
                    .into_iter()
                    .map(|(k, v)| (k, v.expose().to_string()))
                    .collect()
            })
            .map_err(|e| e.to_string())
    }

    #[test]
    fn reads_the_dotenv_forms_people_write() {
        let text = "\
# Paperclip's keys
PAPERCLIP_LITELLM_KEY=sk-plain
export BRAVE_SEARCH_KEY_PAPERCLIP = 'lit#eral \\n'
EMAIL_RESEND_API_KEY=\"re_a\\\"b\\nc\"  # trailing comment

GEMINI_API_KEY=abc # comment
WITH_EQUALS=a=b=c
EMPTY=
";
        assert_eq!(
            parse(text).unwrap(),
            [
                ("PAPERCLIP_LITELLM_KEY", "sk-plain"),
                ("BRAVE_SEARCH_KEY_PAPERCLIP", "lit#eral \\n"),
                ("EMAIL_RESEND_API_KEY", "re_a\"b\nc"),
                ("GEMINI_API_KEY", "abc"),
                ("WITH_EQUALS", "a=b=c"),
                ("EMPTY", ""),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }

    #[test]
    fn bad_lines_name_file_and_line_but_never_their_text() {
        let cases = [
            ("OK=1\nsk-canary-value\n", 2, "expected KEY=VALUE"),
            ("1KEY=canary-value", 1, "KEY of letters"),
            ("sk canary value=x", 1, "KEY of letters"),
            ("A='canary-value", 1, "single quote is not closed"),
            ("\n\nA=\"canary-value", 3, "double quote is not closed"),
            (
                "A=\"canary-value\" canary-value",
                1,
                "after the closing quote",
            ),
            ("A=\"canary\\q-value\"", 1, "unknown escape"),
            ("A=1\nA=canary-value", 2, "A is already set on line 1"),
        ];
        for (text, line, problem) in cases {
            let error = parse(text).unwrap_err();
            assert!(
                error.starts_with(&format!("secrets.env:{line}: ")),
                "{text:?}: {error}"
            );
            assert!(error.contains(problem), "{text:?}: {error}");
            assert!(!error.contains("canary"), "{text:?}: {error}");
        }
    }

    #[test]
    fn the_environment_wins_over_the_file_and_empty_values_do_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secrets.env");
        std::fs::write(
            &file,
            "PAPERCLIP_LLM_KEY=from-file\nBETTER_AUTH_SECRET=\nUNRELATED=x\n",
        )
        .unwrap();
        let secrets = Secrets::default();
        let from_file = Provided::gather(&secrets, Some(&file), |_| None).unwrap();
        let (value, source) = from_file.get("PAPERCLIP_LLM_KEY").unwrap();
        assert_eq!(value.expose(), "from-file");
        assert_eq!(*source, Source::File { path: file.clone() });
        assert!(from_file.get("BETTER_AUTH_SECRET").is_none());

        let both = Provided::gather(&secrets, Some(&file), |name| {
            (name == "PAPERCLIP_LLM_KEY").then(|| "from-env".to_string())
        })
        .unwrap();
        let (value, source) = both.get("PAPERCLIP_LLM_KEY").unwrap();
        assert_eq!((value.expose(), source), ("from-env", &Source::Environment));
    }
}
