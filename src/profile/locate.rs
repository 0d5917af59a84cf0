//! Finds where a field path sits in a YAML document, so errors found after deserialization
//! (cross-field checks, `--set` conflicts) can still point at a line and column.
//!
//! It walks the document with serde_yaml's own deserializer and fails on purpose at the target
//! node: the parser stamps its position on that error, which is exactly the position we want.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One step of a field path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// Parses `a.b[2].c` (serde_path_to_error's notation) or `a.b.2.c`.
pub fn parse_path(path: &str) -> Vec<Segment> {
    path.split('.')
        .filter(|s| !s.is_empty())
        .flat_map(|part| {
            let mut segments = Vec::new();
            let (name, mut rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
            if let Ok(i) = name.parse() {
                segments.push(Segment::Index(i));
            } else if !name.is_empty() {
                segments.push(Segment::Key(name.to_string()));
            }
            while let Some((index, tail)) = rest.split_once(']') {
                if let Ok(i) = index.parse() {
                    segments.push(Segment::Index(i));
                }
                rest = tail.trim_start_matches('[');
            }
            segments
        })
        .collect()
}

pub fn format_path(path: &[Segment]) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Key(k) if out.is_empty() => out.push_str(k),
            Segment::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    if out.is_empty() { ".".into() } else { out }
}

/// The position (byte offset, line, column) of the deepest node of `path` present in `text`.
pub fn locate(text: &str, path: &[Segment]) -> Option<(usize, usize, usize)> {
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    match Seek(path).deserialize(deserializer) {
        Err(e) => e.location().map(|l| (l.index(), l.line(), l.column())),
        Ok(()) => None,
    }
}

const FOUND: &str = "found";

struct Seek<'p>(&'p [Segment]);

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(SeekVisitor(self.0))
    }
}

struct SeekVisitor<'p>(&'p [Segment]);

impl SeekVisitor<'_> {
    fn here<E: de::Error>(&self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
}

impl<'de> Visitor<'de> for SeekVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Segment::Key(wanted), rest)) = self.0.split_first() else {
            return self.here();
        };
        while let Some(key) = map.next_key::<String>()? {
            if &key == wanted {
                return map.next_value_seed(Seek(rest));
            }
            map.next_value::<IgnoredAny>()?;
        }
        self.here()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Segment::Index(wanted), rest)) = self.0.split_first() else {
            return self.here();
        };
        let mut index = 0;
        loop {
            if index == *wanted {
                return match seq.next_element_seed(Seek(rest))? {
                    Some(()) => Ok(()),
                    None => self.here(),
                };
            }
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return self.here();
            }
            index += 1;
        }
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.here()
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.here()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.here()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.here()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.here()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.here()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "a:\n  b:\n    - x: 1\n    - x: 2\n      y: three\n";

    #[test]
    fn finds_nested_nodes() {
        let at = |p: &str| locate(DOC, &parse_path(p)).map(|(_, l, c)| (l, c));
        assert_eq!(at("a.b[1].y"), Some((5, 10)));
        assert_eq!(at("a.b.1.x"), Some((4, 10)));
        assert_eq!(at("a.b[0].x"), Some((3, 10)));
    }

    #[test]
    fn paths_round_trip() {
        let p = parse_path("secrets.externalSecrets[2].keys[0].remote");
        assert_eq!(format_path(&p), "secrets.externalSecrets[2].keys[0].remote");
        assert_eq!(parse_path("a.2.b"), parse_path("a[2].b"));
    }
}
