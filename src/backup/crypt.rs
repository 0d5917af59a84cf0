//! Encryption at rest with age (the `age` crate): an archive holds the master key and the
//! database's connection string, so it can be written for one or more recipients — age keys
//! (`age1…`), or SSH public keys (`ssh-ed25519 …`, `ssh-rsa …`, e.g. `~/.ssh/id_ed25519.pub`) —
//! and read back with a matching identity file (an age key file, or an unencrypted SSH private
//! key).

use std::io::{BufRead, Write};
use std::path::Path;
use std::str::FromStr;

use crate::error::{Error, Result};

/// How an age file starts.
pub const MAGIC: &[u8] = b"age-encryption.org/v1";

/// A recipient to encrypt to.
pub type Recipient = Box<dyn age::Recipient + Send + Sync>;

/// An identity to decrypt with.
pub type Identity = Box<dyn age::Identity + Send + Sync>;

/// Reads `--recipient` values: each one a recipient, or a file of them (one per line, `#`
/// comments and blank lines skipped).
pub fn recipients(values: &[String]) -> Result<Vec<Recipient>> {
    let mut out = Vec::new();
    for value in values {
        if let Some(recipient) = parse(value.trim()) {
            out.push(recipient);
            continue;
        }
        let path = Path::new(value);
        if !path.is_file() {
            return Err(Error::usage(
                format!(
                    "--recipient {value:?} is neither an age or SSH public key nor a readable file"
                ),
                "pass an age recipient (age1…), an ssh-ed25519/ssh-rsa public key, or a file of them",
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::usage(
                format!("cannot read the recipients file {}: {e}", path.display()),
                "pass a readable file of age or SSH public keys",
            )
        })?;
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            out.push(parse(line).ok_or_else(|| {
                Error::usage(
                    format!(
                        "{} line {}: not an age recipient or an ssh-ed25519/ssh-rsa public key",
                        path.display(),
                        index + 1
                    ),
                    "one recipient per line: age1…, ssh-ed25519 …, or ssh-rsa …",
                )
            })?);
        }
    }
    Ok(out)
}

/// Whether `text` is one recipient (not a file of them).
pub fn is_recipient(text: &str) -> bool {
    parse(text).is_some()
}

fn parse(text: &str) -> Option<Recipient> {
    if let Ok(r) = age::x25519::Recipient::from_str(text) {
        return Some(Box::new(r));
    }
    age::ssh::Recipient::from_str(text)
        .ok()
        .map(|r| Box::new(r) as Recipient)
}

/// Reads the identities in the file at `path`: age secret keys, or one SSH private key
/// (passphrase-protected ones are refused: there is no one to ask in a script).
pub fn identities(path: &Path) -> Result<Vec<Identity>> {
    let refuse = |why: String| {
        Error::usage(
            format!("--identity {}: {why}", path.display()),
            "pass an age identity file (AGE-SECRET-KEY-…) or an unencrypted SSH private key",
        )
    };
    let bytes = std::fs::read(path).map_err(|e| refuse(format!("cannot read it: {e}")))?;
    if bytes.windows(15).any(|w| w == b"AGE-SECRET-KEY-") {
        return age::IdentityFile::from_buffer(bytes.as_slice())
            .map_err(|e| refuse(e.to_string()))?
            .into_identities()
            .map_err(|e| refuse(e.to_string()));
    }
    match age::ssh::Identity::from_buffer(bytes.as_slice(), None)
        .map_err(|e| refuse(format!("not an identity ({e})")))?
    {
        age::ssh::Identity::Unencrypted(key) => {
            Ok(vec![Box::new(age::ssh::Identity::Unencrypted(key))])
        }
        age::ssh::Identity::Encrypted(_) => Err(refuse(
            "the SSH key is passphrase-protected; decrypt a copy (ssh-keygen -p) or use an age \
             identity"
                .into(),
        )),
        age::ssh::Identity::Unsupported(_) => Err(refuse("an unsupported SSH key type".into())),
    }
}

/// `out` wrapped so that what is written to it is encrypted to `recipients`; the writer's
/// `finish` must be called to write the last chunk.
pub fn encrypt<W: Write>(recipients: &[Recipient], out: W) -> Result<age::stream::StreamWriter<W>> {
    let encryptor = age::Encryptor::with_recipients(
        recipients.iter().map(|r| r.as_ref() as &dyn age::Recipient),
    )
    .map_err(|e| Error::usage(format!("cannot encrypt: {e}"), "check the recipients"))?;
    encryptor.wrap_output(out).map_err(Error::Output)
}

/// The plaintext of the age file `input`, or why it cannot be read with `identities`.
pub fn decrypt<R: BufRead>(
    input: R,
    identities: &[Identity],
) -> std::result::Result<age::stream::StreamReader<R>, String> {
    if identities.is_empty() {
        return Err("it is encrypted: pass --identity with a key it was encrypted to".into());
    }
    let decryptor = age::Decryptor::new_buffered(input).map_err(|e| e.to_string())?;
    decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| format!("it cannot be decrypted with the given identity ({e})"))
}

/// The kinds of recipients the age file at `path` was encrypted to, as its header names them
/// (`X25519`, `ssh-ed25519`, `ssh-rsa`, `scrypt`), an SSH recipient with the tag age derives from
/// its public key; the stanzas age adds for no recipient (`…-grease`) are left out. The header
/// is age's own text format: a version line, one `-> kind args…`
/// line opening each recipient's stanza, and a `---` line ending it; the `age` crate reads it
/// only to decrypt, so it is read here.
pub fn recipient_kinds(path: &Path) -> std::result::Result<Vec<String>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    let mut kinds = Vec::new();
    // The header is small; a file without its end within this many lines is not age's.
    for line in std::io::BufReader::new(file).split(b'\n').take(4096) {
        let line = line.map_err(|e| format!("cannot read it: {e}"))?;
        if line.starts_with(b"---") {
            return Ok(kinds);
        }
        let Some(stanza) = line.strip_prefix(b"-> ") else {
            continue;
        };
        let mut args = std::str::from_utf8(stanza).unwrap_or_default().split(' ');
        let kind = args.next().unwrap_or_default();
        // age adds a stanza of random kind `…-grease` that no recipient reads.
        if kind.ends_with("-grease") {
            continue;
        }
        kinds.push(match (kind, args.next()) {
            ("ssh-ed25519" | "ssh-rsa", Some(tag)) => format!("{kind} (key tag {tag})"),
            _ => kind.to_string(),
        });
    }
    Err("its age header is damaged".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    const SSH_ED25519_PUB: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN alice@rust";

    #[test]
    fn recipients_are_keys_or_files_of_them_and_bad_lines_are_named() {
        let key = age::x25519::Identity::generate();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("recipients.txt");
        std::fs::write(
            &file,
            format!("# team\n{}\n\n{SSH_ED25519_PUB}\n", key.to_public()),
        )
        .unwrap();
        let found = recipients(&[key.to_public().to_string(), file.display().to_string()]).unwrap();
        assert_eq!(found.len(), 3);

        std::fs::write(&file, "age1nope\n").unwrap();
        let e = recipients(&[file.display().to_string()]).err().unwrap();
        assert!(e.to_string().contains("recipients.txt line 1"), "{e}");
        let e = recipients(&["nope".into()]).err().unwrap();
        assert_eq!(e.exit_code(), crate::error::exit::INVALID_INPUT);
    }

    #[test]
    fn what_is_encrypted_decrypts_with_the_identity_only() {
        use age::secrecy::ExposeSecret;
        let key = age::x25519::Identity::generate();
        let dir = tempfile::tempdir().unwrap();
        let identity = dir.path().join("key.txt");
        std::fs::write(&identity, key.to_string().expose_secret()).unwrap();
        let recipients = recipients(&[key.to_public().to_string()]).unwrap();
        let mut writer = encrypt(&recipients, Vec::new()).unwrap();
        writer.write_all(b"secret").unwrap();
        let sealed = writer.finish().unwrap();
        assert!(sealed.starts_with(MAGIC));

        let mut plain = String::new();
        decrypt(sealed.as_slice(), &identities(&identity).unwrap())
            .unwrap()
            .read_to_string(&mut plain)
            .unwrap();
        assert_eq!(plain, "secret");

        let other = dir.path().join("other.txt");
        let stranger = age::x25519::Identity::generate();
        std::fs::write(&other, stranger.to_string().expose_secret()).unwrap();
        let refused = decrypt(sealed.as_slice(), &identities(&other).unwrap());
        assert!(refused.is_err());
        assert!(decrypt(sealed.as_slice(), &[]).is_err());
    }

    #[test]
    fn the_recipients_kinds_are_read_from_the_header() {
        let key = age::x25519::Identity::generate();
        let recipients =
            recipients(&[key.to_public().to_string(), SSH_ED25519_PUB.into()]).unwrap();
        let mut writer = encrypt(&recipients, Vec::new()).unwrap();
        writer.write_all(b"secret").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sealed.age");
        std::fs::write(&path, writer.finish().unwrap()).unwrap();
        let kinds = recipient_kinds(&path).unwrap();
        assert_eq!(kinds.len(), 2, "{kinds:?}");
        assert!(kinds.contains(&"X25519".to_string()), "{kinds:?}");
        assert!(
            kinds.iter().any(|k| k.starts_with("ssh-ed25519 (key tag ")),
            "{kinds:?}"
        );
        std::fs::write(&path, b"age-encryption.org/v1\n-> X25519 abc\n").unwrap();
        assert!(recipient_kinds(&path).unwrap_err().contains("damaged"));
    }
}
