//! A secret value that cannot be printed by accident.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::error::SecretsError;

/// Bytes of OS randomness in a generated value: 256 bits, more than any key Paperclip signs with
/// needs (BETTER_AUTH_SECRET asks for at least 32 characters; this gives 43).
const GENERATED_BYTES: usize = 32;

/// A secret value. It has no `Display`, its `Debug` shows `<redacted>`, and only this module's
/// crate can read it, so a value never reaches output, logs or error messages through formatting.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> SecretValue {
        SecretValue(value.into())
    }

    /// A fresh random value, URL-safe so it survives env files, shells and URLs unquoted.
    pub fn generate() -> Result<SecretValue, SecretsError> {
        let mut bytes = [0u8; GENERATED_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| SecretsError::Randomness {
            detail: e.to_string(),
        })?;
        Ok(SecretValue(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// The value itself, for the one place that sends it to Infisical.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let value = SecretValue::new("hunter2-canary");
        assert_eq!(format!("{value:?}"), "SecretValue(<redacted>)");
        assert_eq!(format!("{value:#?}"), "SecretValue(<redacted>)");
    }

    #[test]
    fn generated_values_are_long_url_safe_and_distinct() {
        let a = SecretValue::generate().unwrap();
        let b = SecretValue::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 43);
        assert!(
            a.expose()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }
}
