//! Validated scalar types used by the profile model.
//!
//! Each type checks its value while the profile is deserialized, so a bad value is reported with
//! the file, line, column and field path of the YAML node that holds it.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Implements Deserialize (from a YAML string, or a number where `numbers` is set), Serialize
/// (as the original text) and Display for a newtype whose `FromStr` does the validation.
macro_rules! text_newtype {
    ($name:ident, $expecting:literal) => {
        text_newtype!($name, $expecting, numbers = false);
    };
    ($name:ident, $expecting:literal, numbers = $numbers:literal) => {
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$name, E> {
                        v.parse().map_err(E::custom)
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$name, E> {
                        if $numbers {
                            self.visit_str(&v.to_string())
                        } else {
                            Err(E::invalid_type(de::Unexpected::Unsigned(v), &self))
                        }
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$name, E> {
                        if $numbers {
                            self.visit_str(&v.to_string())
                        } else {
                            Err(E::invalid_type(de::Unexpected::Signed(v), &self))
                        }
                    }
                    fn visit_f64<E: de::Error>(self, v: f64) -> Result<$name, E> {
                        if $numbers {
                            self.visit_str(&v.to_string())
                        } else {
                            Err(E::invalid_type(de::Unexpected::Float(v), &self))
                        }
                    }
                }
                deserializer.deserialize_any(V)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

/// A Kubernetes resource quantity such as `512Mi`, `12Gi`, `250m` or `1`.
///
/// Written by hand: the grammar is small and no maintained crate validates it without pulling in
/// a whole Kubernetes client model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantity(String);
text_newtype!(
    Quantity,
    "a Kubernetes quantity such as 512Mi, 12Gi, 250m or 1",
    numbers = true
);

const QUANTITY_SUFFIXES: &[&str] = &[
    "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "", "k", "M", "G", "T", "P", "E",
];

impl FromStr for Quantity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            let hint = if let Some(stem) = s.strip_suffix("B").or_else(|| s.strip_suffix("b")) {
                format!(" (Kubernetes writes bytes without a B: try {stem}i)")
            } else {
                String::new()
            };
            format!(
                "invalid quantity {s:?}: expected a number with an optional suffix \
                 (Ki, Mi, Gi, Ti, m, k, M, G…), such as 512Mi or 250m{hint}"
            )
        };
        let digits_end = s
            .char_indices()
            .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || (i == 0 && c == '+')))
            .map_or(s.len(), |(i, _)| i);
        let (number, suffix) = s.split_at(digits_end);
        let number = number.trim_start_matches('+');
        let valid_number = !number.is_empty()
            && number != "."
            && number.matches('.').count() <= 1
            && number.chars().all(|c| c.is_ascii_digit() || c == '.');
        let valid_suffix = QUANTITY_SUFFIXES.contains(&suffix)
            || suffix
                .strip_prefix(['e', 'E'])
                .map(|exp| exp.trim_start_matches(['+', '-']))
                .is_some_and(|exp| !exp.is_empty() && exp.chars().all(|c| c.is_ascii_digit()));
        if valid_number && valid_suffix {
            Ok(Quantity(s.to_string()))
        } else {
            Err(bad())
        }
    }
}

impl Quantity {
    /// The value in base units (bytes for memory, cores for CPU), for comparisons.
    pub fn value(&self) -> f64 {
        let s = self.0.trim_start_matches('+');
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (number, suffix) = s.split_at(split);
        let number: f64 = number.parse().unwrap_or(0.0);
        let factor = match suffix {
            "Ki" => 1024f64,
            "Mi" => 1024f64.powi(2),
            "Gi" => 1024f64.powi(3),
            "Ti" => 1024f64.powi(4),
            "Pi" => 1024f64.powi(5),
            "Ei" => 1024f64.powi(6),
            "n" => 1e-9,
            "u" => 1e-6,
            "m" => 1e-3,
            "k" => 1e3,
            "M" => 1e6,
            "G" => 1e9,
            "T" => 1e12,
            "P" => 1e15,
            "E" => 1e18,
            "" => 1.0,
            exp => 10f64.powi(exp[1..].parse().unwrap_or(0)),
        };
        number * factor
    }
}

/// A container image reference; it must name a registry path and may carry a tag and/or digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef(String);
text_newtype!(
    ImageRef,
    "an image reference such as ghcr.io/paperclipai/paperclip:sha-3494e84"
);

impl FromStr for ImageRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.chars().any(char::is_whitespace) {
            return Err(format!(
                "invalid image reference {s:?}: it must not be empty or contain spaces"
            ));
        }
        oci_client::Reference::from_str(s)
            .map(|_| ImageRef(s.to_string()))
            .map_err(|e| {
                format!(
                    "invalid image reference {s:?}: {e} (expected registry/repository:tag or \
                     repository@sha256:digest, lower-case repository)"
                )
            })
    }
}

impl ImageRef {
    /// The parsed reference, with Docker Hub's implicit registry and `library/` made explicit.
    pub fn reference(&self) -> oci_client::Reference {
        oci_client::Reference::from_str(&self.0).expect("validated when deserialized")
    }

    /// The tag as written, if any (`None` for a bare repository or a digest-only reference).
    pub fn tag(&self) -> Option<String> {
        let reference = self.reference();
        let explicit = self
            .0
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'));
        reference.tag().filter(|_| explicit).map(str::to_string)
    }

    pub fn digest(&self) -> Option<String> {
        self.reference().digest().map(str::to_string)
    }
}

/// A registry host as image references name it: `ghcr.io`, `registry.example:5000`,
/// `127.0.0.1:5000` (no scheme, no path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryHost(String);
text_newtype!(RegistryHost, "a registry host such as ghcr.io");

impl FromStr for RegistryHost {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (host, port) = s.rsplit_once(':').unwrap_or((s, ""));
        let valid_host = !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            });
        let valid_port = s.rsplit_once(':').is_none() || port.parse::<u16>().is_ok_and(|p| p > 0);
        if valid_host && valid_port {
            Ok(RegistryHost(s.to_string()))
        } else {
            Err(format!(
                "invalid registry {s:?}: name the host as in an image reference, such as ghcr.io \
                 or registry.example:5000 (lower case, no scheme or path)"
            ))
        }
    }
}

/// An age recipient for backups: an age key (`age1…`) or an ssh-ed25519/ssh-rsa public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupRecipient(String);
text_newtype!(
    BackupRecipient,
    "an age recipient (age1…) or an ssh-ed25519/ssh-rsa public key"
);

impl FromStr for BackupRecipient {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if crate::backup::crypt::is_recipient(s) {
            Ok(BackupRecipient(s.to_string()))
        } else {
            Err(format!(
                "{s:?} is not an age recipient (age1…) or an ssh-ed25519/ssh-rsa public key"
            ))
        }
    }
}

/// A DNS-1123 label: namespace names and the like (lower-case alphanumerics and '-', ≤ 63).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DnsLabel(String);
text_newtype!(DnsLabel, "a DNS-1123 label such as paperclip-system");

impl FromStr for DnsLabel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if is_dns_label(s) {
            Ok(DnsLabel(s.to_string()))
        } else {
            Err(format!(
                "invalid name {s:?}: use at most 63 lower-case letters, digits and '-', \
                 starting and ending with a letter or digit"
            ))
        }
    }
}

/// A DNS-1123 subdomain: storage class, Secret and ConfigMap names (labels joined by '.', ≤ 253).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DnsSubdomain(String);
text_newtype!(
    DnsSubdomain,
    "a DNS-1123 subdomain such as longhorn or fast.ssd"
);

impl FromStr for DnsSubdomain {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label) {
            Ok(DnsSubdomain(s.to_string()))
        } else {
            Err(format!(
                "invalid name {s:?}: Kubernetes names are lower-case letters, digits, '-' and \
                 '.', at most 253 characters, starting and ending with a letter or digit"
            ))
        }
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// An IP address as a Service's fixed LoadBalancer IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpAddress(String);
text_newtype!(IpAddress, "an IP address such as 192.168.55.212");

impl FromStr for IpAddress {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse::<IpAddr>()
            .map(|_| IpAddress(s.to_string()))
            .map_err(|_| {
                format!("invalid IP address {s:?}: expected e.g. 192.168.55.212 or fd00::10")
            })
    }
}

/// An inclusive range of ports written `60000-60015` (or a single port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRange(String);
text_newtype!(
    PortRange,
    "a port range such as 60000-60015",
    numbers = true
);

/// How many ports one range may publish: every port is its own Service and container port entry.
const MAX_RANGE: u16 = 100;

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (first, last) = s.split_once('-').unwrap_or((s, s));
        let parse = |p: &str| p.trim().parse::<u16>().ok().filter(|&p| p > 0);
        match (parse(first), parse(last)) {
            (Some(a), Some(b)) if a <= b && b - a < MAX_RANGE => Ok(PortRange(s.to_string())),
            (Some(a), Some(b)) if a > b => Err(format!(
                "invalid port range {s:?}: the first port must not be above the last"
            )),
            (Some(_), Some(_)) => Err(format!(
                "invalid port range {s:?}: at most {MAX_RANGE} ports (each becomes a Service port)"
            )),
            _ => Err(format!(
                "invalid port range {s:?}: expected FIRST-LAST with ports 1-65535, e.g. 60000-60015"
            )),
        }
    }
}

impl PortRange {
    pub fn ports(&self) -> std::ops::RangeInclusive<u16> {
        let (first, last) = self.0.split_once('-').unwrap_or((&self.0, &self.0));
        first.trim().parse().unwrap_or(0)..=last.trim().parse().unwrap_or(0)
    }
}

/// An http(s) URL such as the public URL of the app or Infisical's API host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl(String);
text_newtype!(HttpUrl, "an http(s) URL such as https://app.infisical.com");

impl FromStr for HttpUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let rest = s
            .strip_prefix("http://")
            .or_else(|| s.strip_prefix("https://"))
            .ok_or_else(|| format!("invalid URL {s:?}: it must start with http:// or https://"))?;
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        if host.is_empty() || s.chars().any(char::is_whitespace) {
            return Err(format!(
                "invalid URL {s:?}: it needs a host name and no spaces"
            ));
        }
        Ok(HttpUrl(s.to_string()))
    }
}

impl HttpUrl {
    /// The host part without port, for allow-lists.
    pub fn host(&self) -> &str {
        let rest = self.0.split_once("://").map_or(self.0.as_str(), |(_, r)| r);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        if let Some(v6) = authority.strip_prefix('[') {
            return v6.split(']').next().unwrap_or(v6);
        }
        authority.split(':').next().unwrap_or(authority)
    }
}

/// A duration in the Go notation ESO expects for refresh intervals: `1h`, `30m`, `1h30m`, `45s`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoDuration(String);
text_newtype!(GoDuration, "a duration such as 1h, 30m or 1h30m");

impl FromStr for GoDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid duration {s:?}: expected e.g. 1h, 30m, 1h30m or 45s");
        let mut rest = s;
        if rest.is_empty() {
            return Err(bad());
        }
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
            if digits == 0 {
                return Err(bad());
            }
            rest = &rest[digits..];
            let unit = ["ms", "h", "m", "s"]
                .into_iter()
                .find(|u| rest.starts_with(u))
                .ok_or_else(bad)?;
            rest = &rest[unit.len()..];
        }
        Ok(GoDuration(s.to_string()))
    }
}

impl GoDuration {
    /// The duration as Go prints it (`1h0m0s`, `30m0s`, `45s`): what the API server stores for a
    /// metav1.Duration, so an apply of the same value is a no-op rather than a rewrite.
    pub fn canonical(&self) -> String {
        let total = self.to_duration();
        let (secs, millis) = (total.as_secs(), total.subsec_millis());
        if secs == 0 {
            return if millis == 0 {
                "0s".into()
            } else {
                format!("{millis}ms")
            };
        }
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        let seconds = if millis == 0 {
            format!("{s}s")
        } else {
            format!("{s}.{millis:03}s")
        };
        match (h, m) {
            (0, 0) => seconds,
            (0, m) => format!("{m}m{seconds}"),
            (h, m) => format!("{h}h{m}m{seconds}"),
        }
    }

    pub fn to_duration(&self) -> std::time::Duration {
        let mut total = std::time::Duration::ZERO;
        let mut rest = self.0.as_str();
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let n: u64 = rest[..digits].parse().unwrap_or(0);
            rest = &rest[digits..];
            let (unit, factor_ms) = [("ms", 1), ("h", 3_600_000), ("m", 60_000), ("s", 1000)]
                .into_iter()
                .find(|(u, _)| rest.starts_with(u))
                .unwrap_or(("", 0));
            total += std::time::Duration::from_millis(n * factor_ms);
            rest = &rest[unit.len()..];
        }
        total
    }
}

/// An environment variable / Secret data key name (letters, digits, '_', '-', '.').
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct EnvName(String);
text_newtype!(EnvName, "a variable name such as OPENAI_API_KEY");

impl FromStr for EnvName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let valid = !s.is_empty()
            && !s.starts_with(|c: char| c.is_ascii_digit())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if valid {
            Ok(EnvName(s.to_string()))
        } else {
            Err(format!(
                "invalid variable name {s:?}: use letters, digits and '_' (not starting with a digit)"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        for ok in ["512Mi", "12Gi", "250m", "1", "0.5", "1e3", "+1", "100k"] {
            assert!(ok.parse::<Quantity>().is_ok(), "{ok}");
        }
        for bad in ["12GB", "", "Mi", "1.2.3", "12 Gi", "-1", "1x"] {
            assert!(bad.parse::<Quantity>().is_err(), "{bad}");
        }
        assert_eq!(
            "12Gi".parse::<Quantity>().unwrap().value(),
            12.0 * 1024f64.powi(3)
        );
        assert_eq!("250m".parse::<Quantity>().unwrap().value(), 0.25);
        assert_eq!(
            "12Gi".parse::<Quantity>().unwrap().value(),
            12.0 * 1024f64.powi(3)
        );
        assert_eq!("250m".parse::<Quantity>().unwrap().value(), 0.25);
        let err = "12GB".parse::<Quantity>().unwrap_err();
        assert!(err.contains("try 12Gi"), "{err}");
    }

    #[test]
    fn image_tags_and_digests() {
        let tagged: ImageRef = "ghcr.io/paperclipai/paperclip:sha-3494e84".parse().unwrap();
        assert_eq!(tagged.tag().as_deref(), Some("sha-3494e84"));
        let bare: ImageRef = "localhost:5000/shell".parse().unwrap();
        assert_eq!(bare.tag(), None);
        let pinned: ImageRef = format!("postgres@sha256:{}", "a".repeat(64))
            .parse()
            .unwrap();
        assert_eq!(pinned.tag(), None);
        assert!(pinned.digest().is_some());
        assert!("Ghcr.io/UPPER/case:1".parse::<ImageRef>().is_err());
    }

    #[test]
    fn registry_hosts() {
        for ok in [
            "ghcr.io",
            "registry.example:5000",
            "127.0.0.1:55000",
            "localhost",
        ] {
            assert!(ok.parse::<RegistryHost>().is_ok(), "{ok}");
        }
        for bad in [
            "",
            "https://ghcr.io",
            "ghcr.io/you",
            "GHCR.io",
            "host:",
            "host:99999",
        ] {
            assert!(bad.parse::<RegistryHost>().is_err(), "{bad}");
        }
    }

    #[test]
    fn port_ranges() {
        let r: PortRange = "60000-60015".parse().unwrap();
        assert_eq!(r.ports().count(), 16);
        assert!("60015-60000".parse::<PortRange>().is_err());
        assert!("1-65535".parse::<PortRange>().is_err());
        assert!("0-10".parse::<PortRange>().is_err());
    }

    #[test]
    fn url_hosts() {
        let u: HttpUrl = "http://192.168.55.212:3100/x".parse().unwrap();
        assert_eq!(u.host(), "192.168.55.212");
        assert!("ftp://x".parse::<HttpUrl>().is_err());
    }

    #[test]
    fn durations() {
        for ok in ["1h", "30m", "1h30m", "45s", "500ms"] {
            assert!(ok.parse::<GoDuration>().is_ok(), "{ok}");
        }
        for bad in ["", "h", "1d", "1 h"] {
            assert!(bad.parse::<GoDuration>().is_err(), "{bad}");
        }
        let d: GoDuration = "1h30m5s".parse().unwrap();
        assert_eq!(d.to_duration().as_secs(), 5405);
        let canonical = |s: &str| s.parse::<GoDuration>().unwrap().canonical();
        assert_eq!(canonical("1h"), "1h0m0s");
        assert_eq!(canonical("30m"), "30m0s");
        assert_eq!(canonical("90s"), "1m30s");
        assert_eq!(canonical("250ms"), "250ms");
        let d: GoDuration = "250ms".parse().unwrap();
        assert_eq!(d.to_duration().as_millis(), 250);
    }
}
