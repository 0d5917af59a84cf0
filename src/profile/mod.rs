//! Profiles: the embedded ones, files given by path, `--set` overrides, and the errors that point
//! at the exact file, line, column and field of a bad value.

mod error;
mod locate;
pub mod model;
mod overrides;
pub mod types;
mod validate;

use std::path::Path;

pub use error::ProfileError;
pub use model::Profile;

/// Profiles compiled into the binary, by name.
pub const BUILTIN: &[(&str, &str)] = &[
    ("default", include_str!("../../profiles/default.yaml")),
    ("frank", include_str!("../../profiles/frank.yaml")),
];

/// A profile with where it came from, ready to render.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub profile: Profile,
    /// `builtin:frank` or the file's path, for messages and the release record.
    pub origin: String,
    pub overrides: Vec<String>,
}

/// Loads `selector` (a built-in name, or a path to a YAML file) and applies `--set` overrides.
pub fn load(selector: &str, sets: &[String]) -> Result<Loaded, ProfileError> {
    let (origin, text) = read(selector)?;
    let profile = parse(&origin, &text)?;
    let profile = if sets.is_empty() {
        profile
    } else {
        overrides::apply(&text, sets)?
    };
    Ok(Loaded {
        profile,
        origin,
        overrides: sets.to_vec(),
    })
}

/// Parses and validates one profile document; errors carry `origin` and the YAML position.
pub fn parse(origin: &str, text: &str) -> Result<Profile, ProfileError> {
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    let profile: Profile = serde_path_to_error::deserialize(deserializer)
        .map_err(|e| ProfileError::from_serde(origin, text, e))?;
    validate::check(&profile).map_err(|issue| issue.at_file(origin, text))?;
    Ok(profile.resolve())
}

fn read(selector: &str) -> Result<(String, String), ProfileError> {
    let looks_like_path = selector.contains(['/', '\\'])
        || selector.ends_with(".yaml")
        || selector.ends_with(".yml")
        || Path::new(selector).is_file();
    if looks_like_path {
        return std::fs::read_to_string(selector)
            .map(|text| (selector.to_string(), text))
            .map_err(|e| ProfileError::unreadable(selector, &e));
    }
    BUILTIN
        .iter()
        .find(|(name, _)| *name == selector)
        .map(|(name, text)| (format!("builtin:{name}"), text.to_string()))
        .ok_or_else(|| ProfileError::unknown_builtin(selector))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_parse() {
        for (name, _) in BUILTIN {
            load(name, &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
