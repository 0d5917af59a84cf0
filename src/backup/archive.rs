//! The backup archive: a zstd-compressed tar of a `manifest.json` naming each part's size and
//! sha256, followed by the parts; optionally encrypted with age as a whole (see
//! [`super::crypt`]). zstd (level 3) compresses a SQL dump several times faster than gzip's
//! default level, and smaller; archives written with gzip before are still read, the format
//! being told by the file's first bytes.
//!
//! Tar needs an entry's size before its bytes, and a dump's size is known only at its end, so
//! the large parts (the dump, the instance files' tar) are compressed into a zstd frame of their
//! own on disk *while* they stream in, hashed on the way: memory stays flat, and compression
//! runs alongside the dump instead of after it. The archive is then a sequence of zstd frames —
//! each tar header, small part and padding compressed as one, each large part's frame copied as
//! it is — which any zstd decoder reads as one stream, so the result is an ordinary `.tar.zst`.
//! The manifest goes first: a listing reads one small entry, not the dump. Archives written
//! before that carry the manifest last; [`verify`] takes either order.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use flate2::read::GzDecoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::crypt::{self, Identity, Recipient};
use super::layout::Plan;
use crate::error::{Error, Result};

pub const MANIFEST: &str = "manifest.json";
pub const DUMP: &str = "database.sql";
pub const MASTER_KEY: &str = "secrets/master.key";
pub const SIGNING_KEY: &str = "secrets/decision-signing.key";
pub const ENV_FILE: &str = ".env";
pub const CONFIG: &str = "config.json";
/// The tar of the instance's other files (uploads, agents' instructions, …).
pub const FILES: &str = "instance-files.tar";
/// The instance files that travel as parts of their own, put back one by one by a restore.
pub const INSTANCE_PARTS: [&str; 4] = [MASTER_KEY, SIGNING_KEY, ENV_FILE, CONFIG];
/// Every part an archive may hold besides its manifest.
pub const PARTS: [&str; 6] = [DUMP, MASTER_KEY, SIGNING_KEY, ENV_FILE, CONFIG, FILES];

/// How archive file names end.
pub const EXTENSION: &str = ".tar.zst";

/// What a large part's compressed frame is called in the scratch directory while a backup runs.
pub const COMPRESSED: &str = ".zst";

/// zstd's level: its default, fast and already smaller than gzip's default on SQL dumps.
const ZSTD_LEVEL: i32 = 3;

/// The manifest's format; a restore refuses others. Format 1 held the dump, the master key and
/// the config only.
const FORMAT: u32 = 2;
const FORMATS: [u32; 2] = [1, 2];

/// A manifest larger than this is not one `backup` wrote.
const MANIFEST_LIMIT: u64 = 1024 * 1024;

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
    /// The app took its master key from `PAPERCLIP_SECRETS_MASTER_KEY`: the key is not in
    /// the archive (unless a key file was there too), and the restored app needs the same value.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub master_key_from_env: bool,
    /// Which paths of the instance directory are in [`FILES`], which were left out.
    #[serde(default)]
    pub files: Plan,
    /// Made up for one of Paperclip's own dumps (see [`super::upstream`]), never read from a file.
    #[serde(skip)]
    pub upstream_dump: bool,
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
            master_key_from_env: false,
            files: Plan::default(),
            upstream_dump: false,
        }
    }

    /// The parts a restore cannot do without.
    fn required(&self) -> Vec<&'static str> {
        let mut required = vec![DUMP, CONFIG];
        if !self.master_key_from_env {
            required.push(MASTER_KEY);
        }
        required
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

/// A large part as it streams in: hashed, and written compressed (one zstd frame) to
/// `<dir>/<name>.zst`, where [`write`] copies it from.
///
/// The side reading the stream only copies each chunk into one of a few fixed-size buffers; a
/// thread of its own hashes and compresses the full ones with a single-threaded encoder. So the
/// exec stream is read on without waiting for the compressor (until every buffer is in flight),
/// memory stays bounded by the buffers and one encoder's window, and hashing and compression
/// run alongside the dump on another core.
pub struct CompressedPart {
    /// Full buffers to the writer thread; `None` once finished.
    filled: Option<SyncSender<Vec<u8>>>,
    /// Buffers the writer thread is done with.
    free: Receiver<Vec<u8>>,
    current: Vec<u8>,
    writer: Option<JoinHandle<std::io::Result<Part>>>,
}

/// The size of each buffer between the stream and the writer thread.
const PART_BUFFER: usize = 256 * 1024;
/// How many such buffers exist: what the stream can run ahead of the compressor.
const PART_BUFFERS: usize = 8;

impl CompressedPart {
    pub fn create(dir: &Path, name: &str) -> Result<Self> {
        let file = super::scratch::create(&dir.join(format!("{name}{COMPRESSED}")))?;
        let encoder = zstd::Encoder::new(file, ZSTD_LEVEL).map_err(Error::Output)?;
        let (filled, to_write) = sync_channel::<Vec<u8>>(PART_BUFFERS);
        let (done, free) = sync_channel::<Vec<u8>>(PART_BUFFERS);
        for _ in 1..PART_BUFFERS {
            done.send(Vec::with_capacity(PART_BUFFER))
                .expect("the channel holds every buffer");
        }
        let writer = std::thread::Builder::new()
            .name(format!("compress {name}"))
            .spawn(move || {
                let mut encoder = encoder;
                let mut hasher = Sha256::new();
                let mut size = 0u64;
                for mut buffer in to_write {
                    hasher.update(&buffer);
                    size += buffer.len() as u64;
                    encoder.write_all(&buffer)?;
                    buffer.clear();
                    // The reading side may be gone (it failed): the buffer is dropped then.
                    let _ = done.send(buffer);
                }
                encoder.finish()?.flush()?;
                Ok(Part {
                    size,
                    sha256: hex(&hasher.finalize()),
                })
            })
            .map_err(Error::Output)?;
        Ok(CompressedPart {
            filled: Some(filled),
            free,
            current: Vec::with_capacity(PART_BUFFER),
            writer: Some(writer),
        })
    }

    pub fn write(&mut self, mut chunk: &[u8]) -> std::io::Result<()> {
        while !chunk.is_empty() {
            let n = chunk.len().min(PART_BUFFER - self.current.len());
            self.current.extend_from_slice(&chunk[..n]);
            chunk = &chunk[n..];
            if self.current.len() == PART_BUFFER {
                let next = match self.free.recv() {
                    Ok(next) => next,
                    Err(_) => return Err(self.writer_failed()),
                };
                let full = std::mem::replace(&mut self.current, next);
                if self.send(full).is_err() {
                    return Err(self.writer_failed());
                }
            }
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<Part> {
        let last = std::mem::take(&mut self.current);
        if !last.is_empty() && self.send(last).is_err() {
            return Err(Error::Output(self.writer_failed()));
        }
        self.filled = None;
        self.join().map_err(Error::Output)
    }

    fn send(&self, buffer: Vec<u8>) -> std::result::Result<(), ()> {
        let filled = self.filled.as_ref().ok_or(())?;
        filled.send(buffer).map_err(drop)
    }

    /// The writer thread's error, once it stopped taking buffers.
    fn writer_failed(&mut self) -> std::io::Error {
        self.filled = None;
        match self.join() {
            Err(e) => e,
            Ok(_) => std::io::Error::other("the compressing thread stopped early"),
        }
    }

    fn join(&mut self) -> std::io::Result<Part> {
        let writer = self
            .writer
            .take()
            .ok_or_else(|| std::io::Error::other("the compressing thread is gone"))?;
        writer
            .join()
            .map_err(|_| std::io::Error::other("the compressing thread panicked"))?
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
/// key. The manifest comes first, then the parts it lists from `dir`, where each lies under its
/// name, or compressed as `<name>.zst`. With `recipients`, the whole file is age-encrypted.
///
/// Setting `cancel` makes the write fail at its next chunk (an interrupted run), leaving nothing.
pub fn write(
    path: &Path,
    dir: &Path,
    manifest: &Manifest,
    recipients: &[Recipient],
    cancel: &AtomicBool,
) -> Result<()> {
    let partial = PathBuf::from(format!("{}.partial", path.display()));
    let written = write_partial(&partial, dir, manifest, recipients, cancel)
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
    recipients: &[Recipient],
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
    let file = std::io::BufWriter::with_capacity(256 * 1024, file);
    let file = if recipients.is_empty() {
        write_frames(file, dir, manifest, cancel)?
    } else {
        let sealed = write_frames(crypt::encrypt(recipients, file)?, dir, manifest, cancel)?;
        sealed.finish().map_err(Error::Output)?
    };
    file.into_inner()
        .map_err(|e| Error::Output(e.into_error()))?
        .sync_all()
        .map_err(Error::Output)
}

/// Writes the tar as zstd frames to `out` and returns it.
fn write_frames<W: Write>(
    mut out: W,
    dir: &Path,
    manifest: &Manifest,
    cancel: &AtomicBool,
) -> Result<W> {
    let json = serde_json::to_vec_pretty(manifest)?;
    frame(&mut out, |z| {
        z.write_all(header(MANIFEST, json.len() as u64)?.as_bytes())?;
        z.write_all(&json)?;
        z.write_all(padding(json.len() as u64))
    })
    .map_err(Error::Output)?;
    for (name, part) in &manifest.parts {
        let head = header(name, part.size).map_err(Error::Output)?;
        let compressed = dir.join(format!("{name}{COMPRESSED}"));
        let copied = if compressed.exists() {
            frame(&mut out, |z| z.write_all(head.as_bytes()))
                .and_then(|()| {
                    let source = File::open(&compressed)?;
                    std::io::copy(&mut Cancellable { source, cancel }, &mut out).map(drop)
                })
                .and_then(|()| frame(&mut out, |z| z.write_all(padding(part.size))))
        } else {
            frame(&mut out, |z| {
                z.write_all(head.as_bytes())?;
                let source = File::open(dir.join(name))?;
                let copied = std::io::copy(&mut Cancellable { source, cancel }, z)?;
                if copied != part.size {
                    return Err(std::io::Error::other(format!(
                        "{name} changed while the archive was written"
                    )));
                }
                z.write_all(padding(part.size))
            })
        };
        copied.map_err(Error::Output)?;
    }
    // The end of the tar: two empty blocks.
    frame(&mut out, |z| z.write_all(&[0; 1024])).map_err(Error::Output)?;
    out.flush().map_err(Error::Output)?;
    Ok(out)
}

/// Writes what `body` writes as one zstd frame.
fn frame<W: Write>(
    out: &mut W,
    body: impl FnOnce(&mut zstd::Encoder<'_, &mut W>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut encoder = zstd::Encoder::new(out, ZSTD_LEVEL)?;
    body(&mut encoder)?;
    encoder.finish().map(drop)
}

/// A tar header for a part: owner-only, as the master key is on the volume.
fn header(name: &str, size: u64) -> std::io::Result<tar::Header> {
    let mut header = tar::Header::new_gnu();
    header.set_path(name)?;
    header.set_size(size);
    header.set_mode(0o600);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    Ok(header)
}

/// The zeros that fill an entry of `size` bytes to tar's 512-byte blocks.
fn padding(size: u64) -> &'static [u8] {
    const ZEROS: [u8; 512] = [0; 512];
    &ZEROS[..((512 - size % 512) % 512) as usize]
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

/// Reads only the manifest of the archive at `path` (decrypted with `identities` when it is
/// encrypted): its first entry, so even a large archive answers at once. Fails for anything
/// else, archives with the manifest last included; for an encrypted archive without a matching
/// identity, the reason names the kinds of recipients it was encrypted to.
pub fn read_manifest(
    path: &Path,
    identities: &[Identity],
) -> std::result::Result<Manifest, String> {
    if identities.is_empty() && is_encrypted(path) {
        let recipients = crypt::recipient_kinds(path)?;
        return Err(format!(
            "encrypted with age to {} recipient(s): {}; pass -i/--identity with one of their \
             keys to read it",
            recipients.len(),
            recipients.join(", ")
        ));
    }
    let mut tar = tar::Archive::new(open_stream(path, identities)?);
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
    if entry.size() > MANIFEST_LIMIT {
        return Err(format!("its {MANIFEST} is oversized"));
    }
    let mut json = String::new();
    entry.read_to_string(&mut json).map_err(|e| e.to_string())?;
    serde_json::from_str(&json).map_err(|e| format!("manifest: {e}"))
}

/// Whether the file at `path` is age-encrypted.
pub fn is_encrypted(path: &Path) -> bool {
    let mut magic = [0; crypt::MAGIC.len()];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| magic == crypt::MAGIC)
}

/// The archive's tar stream: decrypted with `identities` when it is age-encrypted, then
/// decompressed as its first bytes say: zstd, or gzip (older archives).
fn open_stream(path: &Path, identities: &[Identity]) -> std::result::Result<Box<dyn Read>, String> {
    let file = File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    if is_encrypted(path) {
        let plain = crypt::decrypt(BufReader::new(file), identities)?;
        return decompress(Box::new(plain));
    }
    decompress(Box::new(file))
}

fn decompress(mut input: Box<dyn Read>) -> std::result::Result<Box<dyn Read>, String> {
    const ZSTD: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
    const GZIP: [u8; 2] = [0x1f, 0x8b];
    let mut magic = Vec::with_capacity(ZSTD.len());
    Read::by_ref(&mut input)
        .take(ZSTD.len() as u64)
        .read_to_end(&mut magic)
        .map_err(|e| format!("cannot read it: {e}"))?;
    let input = std::io::Cursor::new(magic.clone()).chain(input);
    if magic == ZSTD {
        let decoder = zstd::Decoder::new(input).map_err(|e| e.to_string())?;
        Ok(Box::new(decoder))
    } else if magic.starts_with(&GZIP) {
        Ok(Box::new(GzDecoder::new(input)))
    } else {
        Err("it is neither zstd nor gzip compressed".into())
    }
}

/// Unpacks `path` into `dir` (decrypting it with `identities` when it is encrypted) and checks
/// every part against the manifest: the parts it needs, no others, each of the recorded size and
/// sha256, and a tar of instance files whose every entry stays inside the instance directory.
/// The manifest may be the first entry or (in older archives) the last; when it is first, an
/// entry larger than it says is refused before it is read. Nothing outside `dir` is touched, so
/// a refused archive changes nothing.
pub fn verify(path: &Path, dir: &Path, identities: &[Identity]) -> Result<Manifest> {
    let refuse = |why: String| {
        Error::usage(
            format!("{} is not a usable backup: {why}", path.display()),
            "restore only archives written by `paperclipctl backup`, unchanged",
        )
    };
    let mut tar = tar::Archive::new(open_stream(path, identities).map_err(refuse)?);
    let mut manifest: Option<Manifest> = None;
    let mut found = BTreeMap::new();
    let mut seen = HashSet::new();
    let entries = tar.entries().map_err(|e| refuse(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| refuse(format!("it is damaged or cut short ({e})")))?;
        let name = entry
            .path()
            .map_err(|e| refuse(e.to_string()))?
            .display()
            .to_string();
        if !matches!(
            entry.header().entry_type(),
            tar::EntryType::Regular | tar::EntryType::Continuous
        ) {
            return Err(refuse(format!("its entry {name} is not a plain file")));
        }
        if !seen.insert(name.clone()) {
            return Err(refuse(format!("it holds {name} twice")));
        }
        if name == MANIFEST {
            if entry.size() > MANIFEST_LIMIT {
                return Err(refuse(format!(
                    "its {MANIFEST} is oversized ({} bytes)",
                    entry.size()
                )));
            }
            let mut json = String::new();
            entry
                .read_to_string(&mut json)
                .map_err(|e| refuse(e.to_string()))?;
            let read: Manifest =
                serde_json::from_str(&json).map_err(|e| refuse(format!("manifest: {e}")))?;
            if !FORMATS.contains(&read.format) {
                return Err(refuse(format!("manifest format {}", read.format)));
            }
            manifest = Some(read);
            continue;
        }
        let Some(part) = PARTS.iter().find(|p| **p == name) else {
            return Err(refuse(format!("unexpected entry {name}")));
        };
        if let Some(manifest) = &manifest {
            let Some(expected) = manifest.parts.get(*part) else {
                return Err(refuse(format!("unexpected entry {name}")));
            };
            if entry.size() != expected.size {
                return Err(refuse(format!(
                    "{name} is {} bytes, the manifest says {} (oversized or cut short)",
                    entry.size(),
                    expected.size
                )));
            }
        }
        let mut out = HashingFile::create(&dir.join(part))?;
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let n = entry
                .read(&mut buffer)
                .map_err(|e| refuse(format!("it is damaged or cut short ({e})")))?;
            if n == 0 {
                break;
            }
            out.write(&buffer[..n]).map_err(Error::Output)?;
        }
        found.insert(name, out.finish()?);
    }
    let manifest = manifest.ok_or_else(|| refuse(format!("it has no {MANIFEST}")))?;
    if !FORMATS.contains(&manifest.format) {
        return Err(refuse(format!("manifest format {}", manifest.format)));
    }
    for name in manifest.required() {
        if !manifest.parts.contains_key(name) {
            return Err(refuse(format!("the manifest does not list {name}")));
        }
    }
    for (name, expected) in &manifest.parts {
        if !PARTS.contains(&name.as_str()) {
            return Err(refuse(format!("the manifest lists an unknown part {name}")));
        }
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
    if let Some(name) = found.keys().find(|n| !manifest.parts.contains_key(*n)) {
        return Err(refuse(format!("unexpected entry {name}")));
    }
    if manifest.parts.contains_key(FILES) {
        let files = File::open(dir.join(FILES)).map_err(Error::Output)?;
        super::tree::check(BufReader::new(files)).map_err(refuse)?;
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes the parts (`name`, body) to `dir/parts`, the dump compressed as a backup writes it.
    fn parts(dir: &Path, extra: &[(&str, &[u8])]) -> (PathBuf, Manifest) {
        let parts = dir.join("parts");
        std::fs::create_dir_all(parts.join("secrets")).unwrap();
        let mut manifest = Manifest::new("ns", Some(3), BTreeMap::new());
        let mut dump = CompressedPart::create(&parts, DUMP).unwrap();
        dump.write(b"CREATE TABLE t ();\n").unwrap();
        manifest.parts.insert(DUMP.into(), dump.finish().unwrap());
        for (name, body) in [(MASTER_KEY, b"key".as_slice()), (CONFIG, b"{}")]
            .into_iter()
            .chain(extra.iter().copied())
        {
            std::fs::write(parts.join(name), body).unwrap();
            manifest.parts.insert(name.into(), digest(body));
        }
        (parts, manifest)
    }

    fn archive(dir: &Path) -> (PathBuf, Manifest) {
        let (parts, manifest) = parts(dir, &[]);
        let path = dir.join(format!("backup{EXTENSION}"));
        write(&path, &parts, &manifest, &[], &AtomicBool::new(false)).unwrap();
        (path, manifest)
    }

    /// Chunks of odd sizes, many buffers' worth: every byte arrives once, in order, and the
    /// digest is the input's.
    #[test]
    fn a_streamed_part_is_compressed_and_hashed_whole_across_its_buffers() {
        let dir = tempfile::tempdir().unwrap();
        let input: Vec<u8> = (0..(PART_BUFFERS * PART_BUFFER * 3 + 12_345) as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let mut part = CompressedPart::create(dir.path(), DUMP).unwrap();
        for chunk in input.chunks(65_537) {
            part.write(chunk).unwrap();
        }
        assert_eq!(part.finish().unwrap(), digest(&input));
        let frame = File::open(dir.path().join(format!("{DUMP}{COMPRESSED}"))).unwrap();
        assert!(zstd::decode_all(frame).unwrap() == input);
    }

    fn refusal(path: &Path, dir: &Path) -> String {
        let e = verify(path, &dir.join("out"), &[]).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::INVALID_INPUT);
        e.to_string()
    }

    #[test]
    fn an_archive_reads_back_with_its_parts_as_one_zstd_stream() {
        let dir = tempfile::tempdir().unwrap();
        let (path, manifest) = archive(dir.path());
        let out = dir.path().join("out");
        assert_eq!(verify(&path, &out, &[]).unwrap(), manifest);
        assert_eq!(std::fs::read(out.join(MASTER_KEY)).unwrap(), b"key");
        assert_eq!(
            std::fs::read(out.join(DUMP)).unwrap(),
            b"CREATE TABLE t ();\n"
        );
        // Any zstd decoder reads the frames as one tar.
        let raw = zstd::decode_all(File::open(&path).unwrap()).unwrap();
        let names: Vec<String> = tar::Archive::new(raw.as_slice())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, [MANIFEST, CONFIG, DUMP, MASTER_KEY]);
    }

    #[test]
    fn the_manifest_is_read_from_the_first_entry_of_an_owner_only_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (path, manifest) = archive(dir.path());
        assert_eq!(read_manifest(&path, &[]).unwrap(), manifest);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    /// Archives written before were gzip-compressed, with the manifest last.
    #[test]
    fn an_older_gzip_archive_with_the_manifest_last_still_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let (parts, mut manifest) = parts(dir.path(), &[]);
        manifest.format = 1;
        let dump = zstd::decode_all(File::open(parts.join("database.sql.zst")).unwrap()).unwrap();
        std::fs::write(parts.join(DUMP), &dump).unwrap();
        let older = dir.path().join("older.tar.gz");
        let gz = flate2::write::GzEncoder::new(
            File::create(&older).unwrap(),
            flate2::Compression::default(),
        );
        let mut tar = tar::Builder::new(gz);
        for name in [DUMP, MASTER_KEY, CONFIG] {
            tar.append_path_with_name(parts.join(name), name).unwrap();
        }
        let json = serde_json::to_vec(&manifest).unwrap();
        let mut head = header(MANIFEST, json.len() as u64).unwrap();
        tar.append_data(&mut head, MANIFEST, json.as_slice())
            .unwrap();
        tar.into_inner().unwrap().finish().unwrap();

        assert_eq!(
            verify(&older, &dir.path().join("out"), &[]).unwrap(),
            manifest
        );
        assert!(read_manifest(&older, &[]).unwrap_err().contains("older"));
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
            &[],
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
        let (parts, mut manifest) = parts(dir.path(), &[]);
        let path = dir.path().join("tampered.tar.zst");
        manifest.parts.get_mut(MASTER_KEY).unwrap().sha256 = digest(b"kez").sha256;
        write(&path, &parts, &manifest, &[], &AtomicBool::new(false)).unwrap();
        let e = refusal(&path, dir.path());
        assert!(
            e.contains("secrets/master.key does not match the manifest"),
            "{e}"
        );
    }

    #[test]
    fn a_truncated_archive_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = archive(dir.path());
        let bytes = std::fs::read(&path).unwrap();
        for cut in [bytes.len() - 20, bytes.len() / 2] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let e = refusal(&path, dir.path());
            assert!(
                e.contains("cut short") || e.contains("missing") || e.contains("damaged"),
                "{cut}: {e}"
            );
        }
    }

    #[test]
    fn a_foreign_file_or_tar_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("foreign.tar.zst");
        std::fs::write(&path, b"plain text").unwrap();
        assert!(refusal(&path, dir.path()).contains("neither zstd nor gzip"));
        assert!(
            read_manifest(&path, &[])
                .unwrap_err()
                .contains("neither zstd nor gzip")
        );

        let mut tar = tar::Builder::new(Vec::new());
        let mut head = header("etc/passwd", 4).unwrap();
        tar.append_data(&mut head, "etc/passwd", &b"root"[..])
            .unwrap();
        let raw = tar.into_inner().unwrap();
        std::fs::write(&path, zstd::encode_all(raw.as_slice(), 3).unwrap()).unwrap();
        assert!(refusal(&path, dir.path()).contains("unexpected entry etc/passwd"));
    }

    #[test]
    fn an_entry_larger_than_its_manifest_says_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let (parts, mut manifest) = parts(dir.path(), &[]);
        let big = vec![b'x'; 1 << 20];
        std::fs::write(parts.join(CONFIG), &big).unwrap();
        // The manifest says what was backed up; the entry is a megabyte more.
        let written = manifest.parts.insert(CONFIG.into(), digest(&big)).unwrap();
        let path = dir.path().join("oversized.tar.zst");
        write(&path, &parts, &manifest, &[], &AtomicBool::new(false)).unwrap();
        let raw = zstd::decode_all(File::open(&path).unwrap()).unwrap();
        manifest.parts.insert(CONFIG.into(), written);
        let json = serde_json::to_vec_pretty(&manifest).unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        let mut head = header(MANIFEST, json.len() as u64).unwrap();
        tar.append_data(&mut head, MANIFEST, json.as_slice())
            .unwrap();
        for entry in tar::Archive::new(raw.as_slice()).entries().unwrap().skip(1) {
            let mut entry = entry.unwrap();
            let mut head = entry.header().clone();
            let name = entry.path().unwrap().into_owned();
            let mut body = Vec::new();
            entry.read_to_end(&mut body).unwrap();
            tar.append_data(&mut head, name, body.as_slice()).unwrap();
        }
        let raw = tar.into_inner().unwrap();
        std::fs::write(&path, zstd::encode_all(raw.as_slice(), 3).unwrap()).unwrap();
        let e = refusal(&path, dir.path());
        assert!(
            e.contains("config.json is 1048576 bytes, the manifest says 2"),
            "{e}"
        );
        let out = dir.path().join("out").join(CONFIG);
        assert!(!out.exists(), "nothing of it was written");
    }

    #[test]
    fn instance_files_leading_outside_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        let mut head = tar::Header::new_gnu();
        head.set_entry_type(tar::EntryType::Symlink);
        head.set_size(0);
        tar.append_link(&mut head, "data/storage/x", "../../../../etc")
            .unwrap();
        let files = tar.into_inner().unwrap();
        let (parts, manifest) = parts(dir.path(), &[(FILES, &files)]);
        let path = dir.path().join("links.tar.zst");
        write(&path, &parts, &manifest, &[], &AtomicBool::new(false)).unwrap();
        assert!(refusal(&path, dir.path()).contains("pointing outside"));
    }

    #[test]
    fn an_encrypted_archive_needs_its_identity_and_detects_tampering() {
        use age::secrecy::ExposeSecret;
        let dir = tempfile::tempdir().unwrap();
        let key = age::x25519::Identity::generate();
        let identity = dir.path().join("key.txt");
        std::fs::write(&identity, key.to_string().expose_secret()).unwrap();
        let (parts, manifest) = parts(dir.path(), &[]);
        let path = dir.path().join("sealed.tar.zst.age");
        let recipients = crypt::recipients(&[key.to_public().to_string()]).unwrap();
        write(
            &path,
            &parts,
            &manifest,
            &recipients,
            &AtomicBool::new(false),
        )
        .unwrap();
        assert!(is_encrypted(&path));
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(3).any(|w| w == b"key"),
            "the key is not in clear"
        );

        let identities = crypt::identities(&identity).unwrap();
        let out = dir.path().join("out");
        assert_eq!(verify(&path, &out, &identities).unwrap(), manifest);
        assert!(refusal(&path, dir.path()).contains("pass --identity"));
        let unread = read_manifest(&path, &[]).unwrap_err();
        assert!(
            unread.contains("encrypted with age to 1 recipient(s): X25519"),
            "{unread}"
        );
        assert!(unread.contains("--identity"), "{unread}");
        assert_eq!(read_manifest(&path, &identities).unwrap(), manifest);

        let mut tampered = bytes.clone();
        let at = tampered.len() - 40;
        tampered[at] ^= 1;
        std::fs::write(&path, &tampered).unwrap();
        assert!(verify(&path, &dir.path().join("again"), &identities).is_err());
    }
}
