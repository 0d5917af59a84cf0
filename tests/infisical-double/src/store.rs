//! The double's in-memory data: machine identities, projects, their environments, folders and
//! secrets. Nothing here knows about HTTP; `api` turns these into Infisical's response shapes.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub struct Identity {
    pub id: String,
    pub client_id: String,
    pub client_secret: String,
}

pub struct Project {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub description: Option<String>,
    /// The identity that created the project; the only one with access to it, as a new project
    /// in Infisical has only its creator as a member.
    pub owner: String,
    pub created_at: String,
    pub environments: Vec<Environment>,
}

pub struct Environment {
    pub id: String,
    pub name: String,
    pub slug: String,
    /// Folders by absolute path. The root `/` always exists, as in Infisical, where every
    /// environment starts with a root folder.
    pub folders: BTreeMap<String, Folder>,
    pub secrets: Vec<Secret>,
}

pub struct Folder {
    pub id: String,
    pub name: String,
    pub parent_id: Option<String>,
    pub description: Option<String>,
    pub created_at: String,
}

#[derive(Clone)]
pub struct Secret {
    pub id: String,
    pub key: String,
    pub value: String,
    pub comment: String,
    pub version: u32,
    pub kind: String,
    pub skip_multiline_encoding: bool,
    pub path: String,
    pub created_at: String,
    pub updated_at: String,
}

impl Project {
    pub fn new(owner: &str, name: &str, slug: String, description: Option<String>) -> Project {
        let environments = [
            ("Development", "dev"),
            ("Staging", "staging"),
            ("Production", "prod"),
        ]
        .into_iter()
        .map(|(name, slug)| Environment::new(name, slug))
        .collect();
        Project {
            id: new_id(),
            slug,
            name: name.to_string(),
            description,
            owner: owner.to_string(),
            created_at: now(),
            environments,
        }
    }

    pub fn environment(&self, slug: &str) -> Option<&Environment> {
        self.environments.iter().find(|e| e.slug == slug)
    }

    pub fn environment_mut(&mut self, slug: &str) -> Option<&mut Environment> {
        self.environments.iter_mut().find(|e| e.slug == slug)
    }
}

impl Environment {
    fn new(name: &str, slug: &str) -> Environment {
        let root = Folder {
            id: new_id(),
            name: "root".to_string(),
            parent_id: None,
            description: None,
            created_at: now(),
        };
        Environment {
            id: new_id(),
            name: name.to_string(),
            slug: slug.to_string(),
            folders: BTreeMap::from([("/".to_string(), root)]),
            secrets: Vec::new(),
        }
    }

    /// Creates the folder `name` under `parent`, and any missing folder on the way, the way
    /// Infisical does: creating a folder that exists returns the existing one.
    pub fn create_folder(
        &mut self,
        parent: &str,
        name: &str,
        description: Option<String>,
    ) -> String {
        let mut path = "/".to_string();
        let segments = parent.split('/').chain([name]).filter(|s| !s.is_empty());
        for segment in segments {
            let child = join(&path, segment);
            if !self.folders.contains_key(&child) {
                let folder = Folder {
                    id: new_id(),
                    name: segment.to_string(),
                    parent_id: Some(self.folders[&path].id.clone()),
                    description: None,
                    created_at: now(),
                };
                self.folders.insert(child.clone(), folder);
            }
            path = child;
        }
        if let Some(folder) = self.folders.get_mut(&path) {
            folder.description = folder.description.take().or(description);
        }
        path
    }

    pub fn secret(&self, path: &str, key: &str) -> Option<&Secret> {
        self.secrets.iter().find(|s| s.path == path && s.key == key)
    }

    pub fn secret_mut(&mut self, path: &str, key: &str) -> Option<&mut Secret> {
        self.secrets
            .iter_mut()
            .find(|s| s.path == path && s.key == key)
    }

    /// Secrets directly in `path`, or in `path` and every folder below it.
    pub fn secrets_under(&self, path: &str, recursive: bool) -> Vec<&Secret> {
        let mut found: Vec<&Secret> = self
            .secrets
            .iter()
            .filter(|s| s.path == path || (recursive && is_below(&s.path, path)))
            .collect();
        found.sort_by(|a, b| (&a.path, &a.key).cmp(&(&b.path, &b.key)));
        found
    }
}

/// `/a` + `b` → `/a/b`; `/` + `b` → `/b`.
pub fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

pub fn is_below(path: &str, ancestor: &str) -> bool {
    ancestor == "/" && path != "/" || path.starts_with(&format!("{ancestor}/"))
}

/// Normalises a secret path the way Infisical's request schemas do: trimmed, without a trailing
/// slash, and absolute.
pub fn normalize_path(raw: &str) -> String {
    let trimmed = raw.trim().trim_end_matches('/');
    if trimmed.starts_with('/') {
        trimmed.to_string()
    } else {
        format!("/{trimmed}")
    }
}

/// A random UUID (version 4 layout), like the ids Infisical hands out. Random enough to keep
/// tests apart; not meant to resist guessing.
pub fn new_id() -> String {
    let (a, b) = (random_u64(), random_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        (b >> 48) & 0x3fff | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// `len` random lowercase letters and digits.
pub fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| ALPHABET[(random_u64() % ALPHABET.len() as u64) as usize] as char)
        .collect()
}

/// std's hasher keys are seeded randomly per process and per `RandomState`, which is all the
/// randomness a loopback test double needs, without a dependency.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The current time as JavaScript's `Date.toISOString()` prints it, which is what Infisical's
/// timestamps look like: `2026-11-24T07:45:59.123Z`.
pub fn now() -> String {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format_timestamp(since_epoch.as_millis() as i64)
}

fn format_timestamp(millis: i64) -> String {
    let (days, ms_of_day) = (millis.div_euclid(86_400_000), millis.rem_euclid(86_400_000));
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, ms) = (
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000,
    );
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_look_like_javascript_iso_strings() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_timestamp(1_795_506_359_123),
            "2026-11-24T07:45:59.123Z"
        );
        assert_eq!(
            format_timestamp(951_782_400_000),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn ids_are_distinct_uuids() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }

    #[test]
    fn paths_are_normalised_like_infisical_does() {
        assert_eq!(normalize_path("/"), "/");
        assert_eq!(normalize_path(" /app/ "), "/app");
        assert_eq!(normalize_path("app"), "/app");
        assert!(is_below("/a/b", "/a"));
        assert!(is_below("/a", "/"));
        assert!(!is_below("/ab", "/a"));
    }

    #[test]
    fn creating_a_folder_creates_its_parents_once() {
        let mut env = Environment::new("Development", "dev");
        assert_eq!(env.create_folder("/a/b", "c", None), "/a/b/c");
        let id = env.folders["/a/b/c"].id.clone();
        assert_eq!(env.create_folder("/a/b", "c", None), "/a/b/c");
        assert_eq!(env.folders["/a/b/c"].id, id);
        assert_eq!(env.folders.len(), 4);
        assert_eq!(
            env.folders["/a"].parent_id.as_ref(),
            Some(&env.folders["/"].id)
        );
    }
}
