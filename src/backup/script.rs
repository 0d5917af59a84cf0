//! What psql would do with a dump besides sending SQL to the server. psql runs backslash
//! meta-commands found anywhere outside quotes, comments and `COPY … FROM stdin` data — `\!`
//! runs a shell in the database container, `\o`/`\w` write files, `\i` reads them — so a dump
//! from an archive is read here first as psql's lexer reads it, and refused if it holds any.
//!
//! Written by hand: no crate lexes psql's input, and the rules needed are few (standard and `E`
//! strings, quoted identifiers, dollar quotes, both comment forms, COPY data ended by `\.`).
//! pg_dump's own `\restrict KEY` / `\unrestrict KEY` lines (PostgreSQL 17.6 and later), which
//! only narrow what psql accepts, are let through.

use std::io::BufRead;
use std::path::Path;

use crate::error::{Error, Result};

/// The first meta-command in the psql script at `path`, as (line number, the command's name).
pub fn first_meta_command(path: &Path) -> Result<Option<(usize, String)>> {
    let file = std::fs::File::open(path).map_err(Error::Output)?;
    let mut lexer = Lexer::default();
    for (index, line) in std::io::BufReader::new(file).split(b'\n').enumerate() {
        let line = line.map_err(Error::Output)?;
        if let Some(command) = lexer.line(&line) {
            return Ok(Some((index + 1, command)));
        }
    }
    Ok(None)
}

#[derive(Default)]
struct Lexer {
    state: State,
    /// The statement read so far, outside quotes and comments, for telling a `COPY … FROM stdin`.
    statement: String,
}

#[derive(Default, PartialEq, Eq)]
enum State {
    #[default]
    Sql,
    /// In '…'; `escapes` for E'…', where a backslash escapes the next character.
    Quote {
        escapes: bool,
    },
    Identifier,
    /// In $tag$…$tag$; holds the whole delimiter.
    Dollar(Vec<u8>),
    /// In /* … */, nested to this depth.
    Comment(u32),
    /// Lines of COPY data, up to a line `\.`.
    CopyData,
}

impl Lexer {
    /// Reads one line (without its newline); returns the meta-command it starts, if any.
    fn line(&mut self, line: &[u8]) -> Option<String> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if self.state == State::CopyData {
            if line == b"\\." {
                self.state = State::Sql;
            }
            return None;
        }
        if self.state == State::Sql && self.statement.trim().is_empty() && is_restrict(line) {
            return None;
        }
        let mut i = 0;
        while i < line.len() {
            let c = line[i];
            let next = line.get(i + 1).copied();
            match &mut self.state {
                State::Sql => match c {
                    b'\\' => return Some(meta_command(&line[i..])),
                    b'-' if next == Some(b'-') => break,
                    b'/' if next == Some(b'*') => {
                        self.state = State::Comment(1);
                        i += 1;
                    }
                    b'\'' => {
                        let escapes = self.statement.ends_with(['E', 'e'])
                            && !self
                                .statement
                                .chars()
                                .rev()
                                .nth(1)
                                .is_some_and(|p| p.is_alphanumeric() || p == '_');
                        self.state = State::Quote { escapes };
                    }
                    b'"' => self.state = State::Identifier,
                    b'$' => {
                        if let Some(tag) = dollar_tag(&line[i..], &self.statement) {
                            i += tag.len() - 1;
                            self.state = State::Dollar(tag);
                        } else {
                            self.statement.push('$');
                        }
                    }
                    b';' => {
                        let copy_in = is_copy_from_stdin(&self.statement);
                        self.statement.clear();
                        if copy_in {
                            self.state = State::CopyData;
                            // The data starts on the next line.
                            return None;
                        }
                    }
                    _ => self.statement.push(c as char),
                },
                State::Quote { escapes } => match c {
                    b'\\' if *escapes => i += 1,
                    b'\'' if next == Some(b'\'') => i += 1,
                    b'\'' => {
                        self.statement.push_str("''");
                        self.state = State::Sql;
                    }
                    _ => {}
                },
                State::Identifier => {
                    if c == b'"' {
                        if next == Some(b'"') {
                            i += 1;
                        } else {
                            self.statement.push_str("\"\"");
                            self.state = State::Sql;
                        }
                    }
                }
                State::Dollar(tag) => {
                    if line[i..].starts_with(tag) {
                        i += tag.len() - 1;
                        self.state = State::Sql;
                        self.statement.push_str("$$");
                    }
                }
                State::Comment(depth) => {
                    if c == b'*' && next == Some(b'/') {
                        *depth -= 1;
                        i += 1;
                        if *depth == 0 {
                            self.state = State::Sql;
                            self.statement.push(' ');
                        }
                    } else if c == b'/' && next == Some(b'*') {
                        *depth += 1;
                        i += 1;
                    }
                }
                State::CopyData => unreachable!("COPY data is handled by line"),
            }
            i += 1;
        }
        if self.state == State::Sql {
            self.statement.push(' ');
        }
        None
    }
}

/// pg_dump's `\restrict KEY` and `\unrestrict KEY` lines.
fn is_restrict(line: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(line) else {
        return false;
    };
    let mut words = text.split(' ');
    matches!(words.next(), Some("\\restrict" | "\\unrestrict"))
        && words
            .next()
            .is_some_and(|key| !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric()))
        && words.next().is_none()
}

/// The name of the meta-command at the start of `rest` (which starts with its backslash).
fn meta_command(rest: &[u8]) -> String {
    let name: Vec<u8> = rest
        .iter()
        .skip(1)
        .take_while(|c| !c.is_ascii_whitespace())
        .take(16)
        .copied()
        .collect();
    format!("\\{}", String::from_utf8_lossy(&name))
}

/// The delimiter of a dollar quote starting at `rest` (`$$` or `$tag$`), unless the `$` belongs
/// to an identifier or a positional parameter.
fn dollar_tag(rest: &[u8], before: &str) -> Option<Vec<u8>> {
    if before
        .chars()
        .last()
        .is_some_and(|p| p.is_alphanumeric() || p == '_')
    {
        return None;
    }
    let end = rest[1..].iter().position(|c| *c == b'$')? + 1;
    let tag = &rest[1..end];
    let valid = tag.first().is_none_or(|c| !c.is_ascii_digit())
        && tag
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c >= 0x80);
    valid.then(|| rest[..=end].to_vec())
}

/// Whether `statement` (quotes and comments blanked) is a `COPY … FROM stdin`, after which psql
/// sends the following lines to the server as data.
fn is_copy_from_stdin(statement: &str) -> bool {
    let words: Vec<String> = statement
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    words.first().is_some_and(|w| w == "copy")
        && words
            .windows(2)
            .any(|w| w[0] == "from" && (w[1] == "stdin" || w[1] == "pstdin"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(script: &str) -> Option<(usize, String)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dump.sql");
        std::fs::write(&path, script).unwrap();
        first_meta_command(&path).unwrap()
    }

    #[test]
    fn a_dump_as_pg_dump_writes_it_has_no_meta_command() {
        let dump = "\\restrict AbC123\n\
            SET standard_conforming_strings = on;\n\
            CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $_$ SELECT '\\! no' $_$;\n\
            COMMENT ON TABLE t IS 'it''s \\o fine';\n\
            /* a \\! comment /* nested */ still */ SELECT E'\\'\\\\x';\n\
            -- \\! a line comment\n\
            CREATE TABLE \"we\\ird\" (id int);\n\
            COPY public.t (id, note) FROM stdin;\n\
            1\t\\\\! not a command\n\
            2\t\\N\n\
            \\.\n\
            SELECT 1;\n\
            \\unrestrict AbC123\n";
        assert_eq!(first(dump), None);
    }

    #[test]
    fn meta_commands_outside_quotes_are_found_with_their_line() {
        assert_eq!(
            first("SELECT 1;\n\\! touch /tmp/owned\n"),
            Some((2, "\\!".into()))
        );
        assert_eq!(first("SELECT 'a' \\o /tmp/x\n"), Some((1, "\\o".into())));
        // After the data ends, psql reads commands again.
        assert_eq!(
            first("COPY t FROM stdin;\n1\n\\.\n\\i /etc/passwd\n"),
            Some((4, "\\i".into()))
        );
        // A string's end puts the reader back into SQL.
        assert_eq!(
            first("SELECT 'x''\n' \\gexec\n"),
            Some((2, "\\gexec".into()))
        );
        // A `\restrict` line with anything more is not pg_dump's.
        assert_eq!(
            first("\\restrict k \\! id\n"),
            Some((1, "\\restrict".into()))
        );
    }
}
