//! Paperclip's own backups (`data/backups/paperclip-YYYYMMDD-HHMMSS.sql.gz`, copied here with
//! `backup pull`) as something `restore` can load. They are gzip-compressed plain SQL from the
//! app's JavaScript backup engine (or `pg_dump`), hold the database only — the instance's key
//! stays the one on the volume, which is the key they were taken with — and disable triggers
//! with `SET LOCAL session_replication_role = replica`, which only a superuser may set. So they
//! load through the database's superuser: the official image's `POSTGRES_USER` is one; Bitnami's
//! app user is not, and its `postgres` role is used when the container has its password
//! (`POSTGRESQL_POSTGRES_PASSWORD`).

use std::io::Read;
use std::path::Path;

use flate2::read::GzDecoder;

use super::archive::{DUMP, HashingFile, Manifest};
use crate::error::{Error, Result};

/// How upstream's dumps start (after gzip), either engine.
const HEADERS: [&str; 2] = [
    "-- Paperclip database backup",
    "--\n-- PostgreSQL database dump",
];

/// Whether the file at `path` is one of upstream's own gzip-compressed dumps.
pub fn is_upstream_dump(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let mut start = Vec::new();
    let read = GzDecoder::new(file).take(64).read_to_end(&mut start);
    read.is_ok()
        && HEADERS
            .iter()
            .any(|h| String::from_utf8_lossy(&start).starts_with(h))
}

/// Unpacks the dump at `path` into `dir` as the archive's dump would be, and describes it as an
/// archive of `namespace` holding that dump alone.
pub fn open(path: &Path, dir: &Path, namespace: &str) -> Result<Manifest> {
    let refuse = |why: String| {
        Error::usage(
            format!("{} is not a usable backup: {why}", path.display()),
            "pass an archive written by `paperclipctl backup`, or one of Paperclip's own \
             backups copied with `backup pull`, unchanged",
        )
    };
    let file = std::fs::File::open(path).map_err(|e| refuse(format!("cannot open it: {e}")))?;
    let mut gz = GzDecoder::new(file);
    let mut out = HashingFile::create(&dir.join(DUMP))?;
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let n = gz
            .read(&mut buffer)
            .map_err(|e| refuse(format!("it is damaged or cut short ({e})")))?;
        if n == 0 {
            break;
        }
        out.write(&buffer[..n]).map_err(Error::Output)?;
    }
    let mut manifest = Manifest::new(namespace, None, Default::default());
    manifest.parts.insert(DUMP.to_string(), out.finish()?);
    manifest.upstream_dump = true;
    Ok(manifest)
}

/// Sets libpq's user to the database's superuser where the container names one: Bitnami's
/// `postgres` role when its password is set (run before [`super::DB_ENV`]).
pub const SUPERUSER_ENV: &str = r#"
if [ -n "$POSTGRESQL_POSTGRES_PASSWORD" ]; then
  export PGUSER=postgres PGPASSWORD="$POSTGRESQL_POSTGRES_PASSWORD"
  export PGDATABASE="${POSTGRESQL_DATABASE:-postgres}"
fi
"#;

/// Prints `t` when the role psql connects as is a superuser.
pub const IS_SUPERUSER_SQL: &str = "SELECT rolsuper FROM pg_roles WHERE rolname = current_user";

/// The error when no superuser is at hand, with the steps that load the dump by hand.
pub fn needs_superuser(namespace: &str) -> Error {
    Error::not_healthy(
        format!(
            "Paperclip's own backups set session_replication_role, which only a superuser may, \
             and the database container of {namespace} offers none (Bitnami's app user is not \
             one, and POSTGRESQL_POSTGRES_PASSWORD is not set); nothing was changed"
        ),
        format!(
            "load it as the postgres role by hand: scale the app to 0 \
             (kubectl scale -n {namespace} deployment/paperclip --replicas=0), then \
             gunzip -c FILE.sql.gz | kubectl exec -i -n {namespace} paperclip-db-postgresql-0 -c \
             postgresql -- sh -c 'PGPASSWORD=\"$POSTGRESQL_POSTGRES_PASSWORD\" psql -X -v \
             ON_ERROR_STOP=1 -U postgres -h 127.0.0.1 \"$POSTGRESQL_DATABASE\"' (set a \
             postgres password in the database's Secret first if it has none), then scale the \
             app back to 1"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upstream_dump_is_told_and_opened_as_a_dump_alone() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("paperclip-20260101-120000.sql.gz");
        let sql = "-- Paperclip database backup\nBEGIN;\nSET LOCAL session_replication_role = replica;\nCOMMIT;\n";
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&path).unwrap(),
            flate2::Compression::default(),
        );
        gz.write_all(sql.as_bytes()).unwrap();
        gz.finish().unwrap();
        assert!(is_upstream_dump(&path));

        let out = dir.path().join("out");
        let manifest = open(&path, &out, "ns").unwrap();
        assert!(manifest.upstream_dump);
        assert_eq!(manifest.parts.keys().collect::<Vec<_>>(), [DUMP]);
        assert_eq!(std::fs::read_to_string(out.join(DUMP)).unwrap(), sql);

        std::fs::write(&path, b"-- Paperclip database backup, but not gzip").unwrap();
        assert!(!is_upstream_dump(&path));
    }
}
