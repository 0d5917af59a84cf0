//! The backup archive: a zstd-compressed tar of a `manifest.json` naming each part's size and
//! sha256, followed by the parts. zstd (level 3) compresses a SQL dump several times faster than
//! gzip's default level, and smaller; archives written with gzip before are still read, the
//! format being told by the file's first bytes.
//!
//! Tar needs an entry's size before its bytes, and a dump's size is known only at its end, so
//! the dump is streamed to a temporary file on disk (hashed on the way) and appended from there:
//! memory stays flat whatever the database's size. Since every part is on disk before the
//! archive is written, the manifest goes first: a listing reads one small entry, not the dump.
//! Archives written before that carry the manifest last; [`verify`] takes either order.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use flate2::read::GzDecoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

pub const MANIFEST: &str = "manifest.json";
pub const DUMP: &str = "database.sql";
pub const MASTER_KEY: &str = "secrets/master.key";
pub const CONFIG: &str = "config.json";
/// Every part an archive holds besides its manifest.
pub const PARTS: [&str; 3] = [DUMP, MASTER_KEY, CONFIG];

/// How archive file names end.
pub const EXTENSION: &str = ".tar.zst";

/// zstd's level: its default, fast and already smaller than gzip's default on SQL dumps.
const ZSTD_LEVEL: i32 = 3;

/// The manifest's format; a restore refuses others.
const FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format: u32,
    pub created: String,
    pub namespace: String,
    /// The release revision installed when the backup was taken.
    pub revision: Option<u32>,
    /// Images from that revision's record (references and the digests pods ran).
    pub images: BTreeMap<String, String>,
    pub parts: BTreeMap<String, Part>,
    /// Rows of every table of the public schema when the dump was taken.
    pub tables: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Part {
    pub size: u64,
    pub sha256: String,
}

impl Manifest {
    pub fn new(namespace: &str, revision: Option<u32>, images: BTreeMap<String, String>) -> Self {
        Manifest {
            format: FORMAT,
            created: k8s_openapi::jiff::Timestamp::now().to_string(),
            namespace: namespace.to_string(),
            revision,
            images,
            parts: BTreeMap::new(),
            tables: BTreeMap::new(),
        }
    }
}

/// A file written while its sha256 is computed.
pub struct HashingFile {
    file: File,
    hasher: Sha256,
    size: u64,
}

impl HashingFile {
    pub fn create(path: &Path) -> Result<Self> {
        Ok(HashingFile {
            // Parts hold the master key and the instance's data: owner-only.
            file: super::scratch::create(path)?,
            hasher: Sha256::new(),
            size: 0,
        })
    }

    pub fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        self.file.write_all(chunk)
    }

    pub fn finish(mut self) -> Result<Part> {
        self.file.flush().map_err(Error::Output)?;
        Ok(Part {
            size: self.size,
            sha256: hex(&self.hasher.finalize()),
        })
    }
}

pub fn digest(bytes: &[u8]) -> Part {
    Part {
        size: bytes.len() as u64,
        sha256: hex(&Sha256::digest(bytes)),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes the archive to `path` (through a `.partial` file renamed at the end, so a failed
/// backup never leaves something that looks like an archive), owner-only: it holds the master
/// key. The manifest comes first, then the parts from `dir`, where each lies under its name.
///
/// Setting `cancel` makes the write fail at its next chunk (an interrupted run), leaving nothing.
pub fn write(path: &Path, dir: &Path, manifest: &Manifest, cancel: &AtomicBool) -> Result<()> {
    let partial = PathBuf::from(format!("{}.partial", path.display()));
    let written = write_partial(&partial, dir, manifest, cancel)
        .and_then(|()| std::fs::rename(&partial, path).map_err(Error::Output));
    if written.is_err() {
        // Half an archive still holds the master key.
        let _ = std::fs::remove_file(&partial);
    }
    written
}

fn write_partial(
    partial: &Path,
    dir: &Path,
    manifest: &Manifest,
    cancel: &AtomicBool,
) -> Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(partial)
        .map_err(|e| {
            Error::usage(
                format!("cannot create {}: {e}", partial.display()),
                "pass -f with a writable path",
            )
        })?;
    let mut encoder = zstd::Encoder::new(file, ZSTD_LEVEL).map_err(Error::Output)?;
    // The dump is complete on disk by now: compressing it is the rest of a backup's time, and
    // zstd's workers spread it over every core.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    encoder.multithread(workers).map_err(Error::Output)?;
    let mut tar = tar::Builder::new(encoder);
    let json = serde_json::to_vec_pretty(manifest)?;
    append(&mut tar, MANIFEST, json.len() as u64, json.as_slice())?;
    for name in PARTS {
        let source = File::open(dir.join(name)).map_err(Error::Output)?;
        let size = source.metadata().map_err(Error::Output)?.len();
        append(&mut tar, name, size, Cancellable { source, cancel })?;
    }
    let encoder = tar.into_inner().map_err(Error::Output)?;
    encoder
        .finish()
        .and_then(|f| f.sync_all())
        .map_err(Error::Output)
}

/// A reader that fails once `cancel` is set.
struct Cancellable<'a, R> {
    source: R,
    cancel: &'a AtomicBool,
}

impl<R: Read> Read for Cancellable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            // Not ErrorKind::Interrupted: copies retry those.
            return Err(std::io::Error::other("the backup was interrupted"));
        }
        self.source.read(buf)
    }
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    size: u64,
    data: impl Read,
) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    // The master key decrypts the instance's secrets: owner-only, as on the volume.
    header.set_mode(0o600);
    header.set_cksum();
    tar.append_data(&mut header, name, data)
        .map_err(Error::Output)
}

/// Reads only the manifest of the archive at `path`: its first entry, so even a large archive
/// answers at once. Fails for anything else, archives with the manifest last included.
pub fn read_manifest(path: &Path) -> std::result::Result<Manifest, String> {
    let mut tar = tar::Archive::new(decompress(path)?);
    let mut entries = tar.entries().map_err(|e| e.to_string())?;
    let mut entry = entries
        .next()
        .ok_or("it is empty")?
        .map_err(|e| format!("not a backup archive ({e})"))?;
    let name = entry
        .path()
        .map_err(|e| e.to_string())?
        .display()
        .to_string();
    if name != MANIFEST {
        return Err(format!(
            "its first entry is {name}, not {MANIFEST} (an older or foreign archive)"
        ));
    }
    let mut json = String::new();
    entry.read_to_string(&mut json).map_err(|e| e.to_string())?;
    serde_json::from_str(&json).map_err(|e| format!("manifest: {e}"))
}

/// The archive's tar stream, decompressed as its first bytes say: zstd, or gzip (older archives).
fn decompress(path: &Path) -> std::result::Result<Box<dyn Read>, String> {
    const ZSTD: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
    const GZIP: [u8; 2] = [0x1f, 0x8b];
    let mut file = File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    let mut magic = Vec::with_capacity(ZSTD.len());
    Read::by_ref(&mut file)
        .take(ZSTD.len() as u64)
        .read_to_end(&mut magic)
        .map_err(|e| format!("cannot read it: {e}"))?;
    let file = std::io::Cursor::new(magic.clone()).chain(file);
    if magic == ZSTD {
        let decoder = zstd::Decoder::new(file).map_err(|e| e.to_string())?;
        Ok(Box::new(decoder))
    } else if magic.starts_with(&GZIP) {
        Ok(Box::new(GzDecoder::new(file)))
    } else {
        Err("it is neither zstd nor gzip compressed".into())
    }
}

/// Unpacks `path` into `dir` and checks every part against the manifest: the right parts, no
/// others, each of the recorded size and sha256. The manifest may be the first entry or (in
/// older archives) the last. Nothing outside `dir` is touched, so a refused archive changes
/// nothing.
pub fn verify(path: &Path, dir: &Path) -> Result<Manifest> {
    let refuse = |why: String| {
        Error::usage(
            format!("{} is not a usable backup: {why}", path.display()),
            "restore only archives written by `paperclipctl backup`, unchanged",
        )
    };
    let mut tar = tar::Archive::new(decompress(path).map_err(refuse)?);
    let mut manifest: Option<Manifest> = None;
    let mut found = BTreeMap::new();
    let entries = tar.entries().map_err(|e| refuse(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| refuse(e.to_string()))?;
        let name = entry
            .path()
            .map_err(|e| refuse(e.to_string()))?
            .display()
            .to_string();
        if name == MANIFEST {
            let mut json = String::new();
            entry
                .read_to_string(&mut json)
                .map_err(|e| refuse(e.to_string()))?;
            manifest =
                Some(serde_json::from_str(&json).map_err(|e| refuse(format!("manifest: {e}")))?);
            continue;
        }
        let Some(part) = PARTS.iter().find(|p| **p == name) else {
            return Err(refuse(format!("unexpected entry {name}")));
        };
        let target = dir.join(part);
        let mut out = HashingFile::create(&target)?;
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let n = entry.read(&mut buffer).map_err(|e| refuse(e.to_string()))?;
            if n == 0 {
                break;
            }
            out.write(&buffer[..n]).map_err(Error::Output)?;
        }
        found.insert(name, out.finish()?);
    }
    let manifest = manifest.ok_or_else(|| refuse(format!("it has no {MANIFEST}")))?;
    if manifest.format != FORMAT {
        return Err(refuse(format!("manifest format {}", manifest.format)));
    }
    for name in PARTS {
        let expected = manifest
            .parts
            .get(name)
            .ok_or_else(|| refuse(format!("the manifest does not list {name}")))?;
        match found.get(name) {
            None => return Err(refuse(format!("{name} is missing"))),
            Some(actual) if actual != expected => {
                return Err(refuse(format!(
                    "{name} does not match the manifest (sha256 {}, {} bytes; expected {}, {} bytes)",
                    actual.sha256, actual.size, expected.sha256, expected.size
                )));
            }
            Some(_) => {}
        }
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(dir: &Path) -> (PathBuf, Manifest) {
        let parts = dir.join("parts");
        std::fs::create_dir_all(parts.join("secrets")).unwrap();
        let mut manifest = Manifest::new("ns", Some(3), BTreeMap::new());
        for (name, body) in [
            (DUMP, b"CREATE TABLE t ();\n".as_slice()),
            (MASTER_KEY, b"key"),
            (CONFIG, b"{}"),
        ] {
            std::fs::write(parts.join(name), body).unwrap();
            manifest.parts.insert(name.into(), digest(body));
        }
        let path = dir.join(format!("backup{EXTENSION}"));
        write(&path, &parts, &manifest, &AtomicBool::new(false)).unwrap();
        (path, manifest)
    }

    #[test]
    fn an_archive_reads_back_with_its_parts() {
        let dir = tempfile::tempdir().unwrap();
        let (path, manifest) = archive(dir.path());
        let out = dir.path().join("out");
        assert_eq!(verify(&path, &out).unwrap(), manifest);
        assert_eq!(std::fs::read(out.join(MASTER_KEY)).unwrap(), b"key");
    }

    #[test]
    fn the_manifest_is_read_from_the_first_entry_of_an_owner_only_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (path, manifest) = archive(dir.path());
        assert_eq!(read_manifest(&path).unwrap(), manifest);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut first = tar::Archive::new(decompress(&path).unwrap());
        let entry = first.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(entry.path().unwrap().to_str(), Some(MANIFEST));
    }

    /// Archives written before were gzip-compressed, with the manifest last.
    #[test]
    fn an_older_gzip_archive_with_the_manifest_last_still_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let (path, manifest) = archive(dir.path());
        let parts = dir.path().join("parts");
        let older = dir.path().join("older.tar.gz");
        let gz = flate2::write::GzEncoder::new(
            File::create(&older).unwrap(),
            flate2::Compression::default(),
        );
        let mut tar = tar::Builder::new(gz);
        for name in PARTS {
            let source = File::open(parts.join(name)).unwrap();
            let size = source.metadata().unwrap().len();
            append(&mut tar, name, size, source).unwrap();
        }
        let json = serde_json::to_vec(&manifest).unwrap();
        append(&mut tar, MANIFEST, json.len() as u64, json.as_slice()).unwrap();
        tar.into_inner().unwrap().finish().unwrap();

        assert_eq!(verify(&older, &dir.path().join("out")).unwrap(), manifest);
        assert!(read_manifest(&older).unwrap_err().contains("older"));
        std::fs::write(&path, b"plain text").unwrap();
        assert!(
            read_manifest(&path)
                .unwrap_err()
                .contains("neither zstd nor gzip")
        );
    }

    #[test]
    fn a_cancelled_write_leaves_neither_an_archive_nor_a_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let (path, manifest) = archive(dir.path());
        std::fs::remove_file(&path).unwrap();
        let cancelled = write(
            &path,
            &dir.path().join("parts"),
            &manifest,
            &AtomicBool::new(true),
        );
        assert!(cancelled.unwrap_err().to_string().contains("interrupted"));
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["parts"]);
    }

    #[test]
    fn a_part_that_does_not_match_the_manifest_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let parts = dir.path().join("parts");
        let (path, mut manifest) = archive(dir.path());
        manifest.parts.insert(DUMP.into(), digest(b"other"));
        write(&path, &parts, &manifest, &AtomicBool::new(false)).unwrap();
        let e = verify(&path, &dir.path().join("out")).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::INVALID_INPUT);
        assert!(
            e.to_string()
                .contains("database.sql does not match the manifest"),
            "{e}"
        );
    }
}
