//! `--set path.to.key=value`: overrides applied to the profile document before it is checked.

use serde_yaml_ng::{Mapping, Value};

use super::error::ProfileError;
use super::locate::{Segment, format_path, parse_path};
use super::model::Profile;
use super::validate;

/// Applies every `--set` to the document `text` and deserializes the result. An error names the
/// `--set` argument that caused it (the file itself was already checked).
pub fn apply(text: &str, sets: &[String]) -> Result<Profile, ProfileError> {
    let mut doc: Value = serde_yaml_ng::from_str(text).unwrap_or(Value::Null);
    let mut parsed = Vec::new();
    for arg in sets {
        let (path, raw) = arg.split_once('=').ok_or_else(|| {
            usage(arg, ".", "expected --set path.to.key=value")
                .with_help("e.g. --set app.service.port=8080")
        })?;
        let segments = parse_path(path);
        if segments.is_empty() {
            return Err(usage(arg, ".", "the path before '=' is empty"));
        }
        // A value is read as YAML, so `--set shell.service.sshPort=2222` is a number and
        // `--set app.allowedHostnames=[a,b]` a list; quote it to force a string.
        let value: Value =
            serde_yaml_ng::from_str(raw).unwrap_or_else(|_| Value::String(raw.into()));
        set(&mut doc, &segments, value).map_err(|msg| usage(arg, &format_path(&segments), &msg))?;
        parsed.push((arg, segments));
    }
    let profile: Profile = serde_path_to_error::deserialize(doc).map_err(|e| {
        let path = parse_path(&e.path().to_string());
        let message = e.into_inner().to_string();
        usage(culprit(&parsed, &path), &format_path(&path), &message)
    })?;
    validate::check(&profile).map_err(|issue| {
        let path = parse_path(&issue.path);
        let arg = culprit(&parsed, &path);
        usage(arg, &issue.path, &issue.message).with_help(issue.help)
    })?;
    Ok(profile.resolve())
}

fn usage(arg: &str, path: &str, message: &str) -> ProfileError {
    ProfileError::new(
        format!("--set {arg}"),
        path.to_string(),
        message.to_string(),
    )
}

/// The `--set` whose path is closest to the failing field (the last one that overlaps it).
fn culprit<'a>(parsed: &[(&'a String, Vec<Segment>)], path: &[Segment]) -> &'a str {
    parsed
        .iter()
        .rev()
        .find(|(_, p)| p.starts_with(path) || path.starts_with(p))
        .or(parsed.last())
        .map_or("", |(arg, _)| arg.as_str())
}

fn set(node: &mut Value, path: &[Segment], value: Value) -> Result<(), String> {
    let Some((first, rest)) = path.split_first() else {
        *node = value;
        return Ok(());
    };
    match first {
        Segment::Key(key) => {
            if node.is_null() {
                *node = Value::Mapping(Mapping::new());
            }
            let map = node
                .as_mapping_mut()
                .ok_or_else(|| format!("cannot set key {key:?}: the parent is not a mapping"))?;
            let child = map.entry(Value::String(key.clone())).or_insert(Value::Null);
            set(child, rest, value)
        }
        Segment::Index(i) => {
            let list = node
                .as_sequence_mut()
                .ok_or_else(|| format!("cannot set index [{i}]: the parent is not a list"))?;
            let len = list.len();
            let child = list
                .get_mut(*i)
                .ok_or_else(|| format!("index [{i}] is past the end of a list of {len}"))?;
            set(child, rest, value)
        }
    }
}
