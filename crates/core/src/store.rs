//! Where uploaded files wait for the worker, one of three stores chosen by `UPLOAD_STORE`:
//! - `redis` (the default): chunked keys with a TTL, needing nothing but the Redis add-on;
//! - `dir:/path`: a directory on one host or a compose volume;
//! - `s3://bucket/prefix`: an S3-compatible bucket (AWS, MinIO, R2, ...), configured by the
//!   standard `AWS_*` variables (see [`UploadStore::from_spec`]).
//!
//! Files go in and out chunk by chunk, never whole in memory: the Redis and dir stores hold one
//! 256 KiB chunk per concurrent upload, the S3 store up to one 5 MiB part (S3's smallest
//! multipart part).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{ClientConfigKey, MultipartUpload, ObjectStoreExt, PutPayload};
use redis::AsyncCommands;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::keys::{Keys, UPLOAD_TTL};
use crate::redis_conn::RedisPool;

/// Chunk size for the Redis store: small enough for Redis, large enough to keep round trips few.
/// Just under 256 KiB: a value of exactly 256 KiB plus Redis's string header lands in the
/// allocator's next size class (320 KiB), so each stored MB cost 1.25 MB of Redis memory
/// (measured: 3.74 MB for a 3 MB file); at this size it costs what it holds.
pub const CHUNK_BYTES: usize = 256 * 1024 - 64;

/// Part size for the S3 store's multipart uploads: S3's minimum for every part but the last.
pub const PART_BYTES: usize = 5 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "UPLOAD_STORE {0:?} is not understood; use \"redis\", \"dir:/path\" or \"s3://bucket\" \
         (optionally \"s3://bucket/prefix\")"
    )]
    BadSpec(String),
    #[error(
        "the S3 upload store cannot be set up: {0}; check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, \
         AWS_REGION, AWS_ENDPOINT_URL and AWS_ALLOW_HTTP"
    )]
    S3Config(String),
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("stored file {0} not found (expired or deleted)")]
    NotFound(String),
    #[error("stored file {0} is incomplete (its upload was interrupted)")]
    Incomplete(String),
    #[error("file store I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("Redis error: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("S3 error: {0}")]
    S3(#[from] object_store::Error),
}

/// `UPLOAD_STORE`, parsed once at start-up (connecting happens later, in [`UploadStore::open`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    Redis,
    Dir(PathBuf),
    S3 { bucket: String, prefix: ObjectPath },
}

impl std::str::FromStr for StoreSpec {
    type Err = StoreError;

    fn from_str(spec: &str) -> Result<Self, StoreError> {
        match spec.trim() {
            "redis" => Ok(Self::Redis),
            s if s.starts_with("s3:") => parse_s3(s)
                .map(|(bucket, prefix)| Self::S3 {
                    bucket: bucket.to_string(),
                    prefix,
                })
                .ok_or_else(|| StoreError::BadSpec(spec.to_string())),
            s => match s.strip_prefix("dir:") {
                Some(p) if !p.is_empty() => Ok(Self::Dir(PathBuf::from(p))),
                _ => Err(StoreError::BadSpec(spec.to_string())),
            },
        }
    }
}

impl StoreSpec {
    /// Reads `UPLOAD_STORE` (default `redis`), recording a problem when it is not understood.
    pub fn from_env(env: &mut crate::config::EnvReader) -> Self {
        let raw = env.text("UPLOAD_STORE", "redis");
        raw.parse().unwrap_or_else(|e: StoreError| {
            env.problem("UPLOAD_STORE", e.to_string());
            Self::Redis
        })
    }
}

/// `s3://bucket[/prefix]` as (bucket, prefix); `None` without a bucket or with a prefix that is
/// not a valid object path (empty segments, `.` or `..`).
fn parse_s3(spec: &str) -> Option<(&str, ObjectPath)> {
    let rest = spec.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() || bucket.contains(char::is_whitespace) {
        return None;
    }
    Some((bucket, ObjectPath::parse(prefix).ok()?))
}

/// A file in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    pub id: String,
    pub name: String,
    pub size: u64,
}

/// Where uploads wait, and what happens to them after their job: deleted at once, or kept for
/// the retention period and then deleted by [`UploadStore::sweep`] (workers call it between
/// jobs).
#[derive(Clone)]
pub struct UploadStore {
    backend: Backend,
    /// Kept files are scheduled in a Redis sorted set; `None` only for stores built without
    /// Redis (tests), which delete at once.
    schedule: Option<(RedisPool, Keys)>,
    retention: Duration,
}

#[derive(Clone)]
enum Backend {
    Redis {
        redis: RedisPool,
        keys: Keys,
    },
    Dir {
        root: PathBuf,
    },
    /// Objects at `{prefix}/{id}` in one bucket.
    S3 {
        s3: Arc<AmazonS3>,
        prefix: ObjectPath,
    },
}

impl UploadStore {
    /// From `UPLOAD_STORE`: "redis" (uses `redis`), "dir:/path" or "s3://bucket[/prefix]".
    ///
    /// The S3 store reads the standard AWS variables (object_store's `AmazonS3Builder::from_env`
    /// reads every `AWS_*` variable it knows), chiefly: `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN` for temporary keys), `AWS_REGION` or
    /// `AWS_DEFAULT_REGION` (default us-east-1), `AWS_ENDPOINT_URL` or `AWS_ENDPOINT` (or
    /// `AWS_ENDPOINT_URL_S3`, which wins) for an S3-compatible service, `AWS_ALLOW_HTTP=true`
    /// for an http:// endpoint and `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true` for services that
    /// need bucket-in-host addressing.
    pub fn from_spec(
        spec: &str,
        redis: impl Into<RedisPool>,
        keys: Keys,
    ) -> Result<Self, StoreError> {
        Self::open(&spec.parse()?, redis, keys)
    }

    /// Opens the store `spec` names. The Redis store keeps its chunks under `keys`.
    pub fn open(
        spec: &StoreSpec,
        redis: impl Into<RedisPool>,
        keys: Keys,
    ) -> Result<Self, StoreError> {
        let redis = redis.into();
        let backend = match spec {
            StoreSpec::Redis => Backend::Redis {
                redis: redis.clone(),
                keys: keys.clone(),
            },
            StoreSpec::Dir(root) => Backend::Dir { root: root.clone() },
            StoreSpec::S3 { bucket, prefix } => {
                s3_store(AmazonS3Builder::from_env(), bucket, prefix.clone())?
            }
        };
        Ok(Self {
            backend,
            schedule: Some((redis, keys)),
            retention: Duration::ZERO,
        })
    }

    /// Keeps files this long after their job succeeded (`UPLOAD_RETENTION_HOURS`; zero deletes
    /// them at once).
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// True for the Redis store, whose room is the Key-Value Store's memory.
    pub fn is_redis(&self) -> bool {
        matches!(self.backend, Backend::Redis { .. })
    }

    /// An S3 store configured only by `options`, not the environment (tests run in parallel
    /// threads and cannot share process-wide `AWS_*` variables). Keys are the lower-case AWS
    /// variable names, e.g. `("aws_endpoint", "http://127.0.0.1:9000")`.
    pub fn s3_with<'a>(
        bucket: &str,
        prefix: &str,
        options: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, StoreError> {
        let mut builder = AmazonS3Builder::new();
        for (key, value) in options {
            let key: AmazonS3ConfigKey = key
                .parse()
                .map_err(|e| StoreError::S3Config(format!("{key}: {e}")))?;
            builder = builder.with_config(key, value);
        }
        let prefix = ObjectPath::parse(prefix)
            .map_err(|e| StoreError::S3Config(format!("prefix {prefix:?}: {e}")))?;
        Ok(Self {
            backend: s3_store(builder, bucket, prefix)?,
            schedule: None,
            retention: Duration::ZERO,
        })
    }

    /// Streams `reader` into the store, refusing more than `max_bytes`.
    pub async fn put<R: AsyncRead + Unpin>(
        &self,
        name: &str,
        mut reader: R,
        max_bytes: u64,
    ) -> Result<StoredFile, StoreError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let written = match &self.backend {
            Backend::Redis { redis, keys } => {
                let mut buf = vec![0u8; CHUNK_BYTES];
                put_redis(redis, keys, &id, name, &mut reader, &mut buf, max_bytes).await
            }
            Backend::S3 { s3, prefix } => {
                put_s3(s3, &object_path(prefix, &id), &mut reader, max_bytes).await
            }
            Backend::Dir { root } => put_dir(root, &id, name, &mut reader, max_bytes).await,
        };
        match written {
            Ok(size) => Ok(StoredFile {
                id,
                name: name.to_string(),
                size,
            }),
            Err(e) => {
                // Nothing of a refused or broken upload stays behind. A failed clean-up is
                // logged, not returned: the caller must still see why the upload failed.
                if let Err(cleanup) = self.delete(&id).await {
                    tracing::warn!(file = %id, error = %cleanup, "could not remove a failed upload");
                }
                Err(e)
            }
        }
    }

    /// Streams a stored file to `dest` (a local temp file); returns its size.
    pub async fn fetch_to(&self, id: &str, dest: &Path) -> Result<u64, StoreError> {
        let mut out = tokio::fs::File::create(dest).await?;
        let size = match &self.backend {
            Backend::Redis { redis, keys } => {
                let mut conn = redis.get().await?;
                let (complete, chunks): (Option<String>, Option<u64>) = redis::cmd("HMGET")
                    .arg(keys.upload(id))
                    .arg("complete")
                    .arg("chunks")
                    .query_async(&mut conn)
                    .await?;
                match complete.as_deref() {
                    None => return Err(StoreError::NotFound(id.to_string())),
                    Some("1") => {}
                    Some(_) => return Err(StoreError::Incomplete(id.to_string())),
                }
                let mut size = 0u64;
                for n in 0..chunks.unwrap_or(0) {
                    let chunk: Option<Vec<u8>> = conn.get(keys.upload_chunk(id, n)).await?;
                    let chunk = chunk.ok_or_else(|| StoreError::Incomplete(id.to_string()))?;
                    out.write_all(&chunk).await?;
                    size += chunk.len() as u64;
                }
                size
            }
            Backend::Dir { root } => {
                let mut src =
                    tokio::fs::File::open(root.join(id))
                        .await
                        .map_err(|e| match e.kind() {
                            std::io::ErrorKind::NotFound => StoreError::NotFound(id.to_string()),
                            _ => StoreError::Io(e),
                        })?;
                tokio::io::copy(&mut src, &mut out).await?
            }
            Backend::S3 { s3, prefix } => {
                let got = s3
                    .get(&object_path(prefix, id))
                    .await
                    .map_err(|e| match e {
                        object_store::Error::NotFound { .. } => {
                            StoreError::NotFound(id.to_string())
                        }
                        e => StoreError::S3(e),
                    })?;
                // The body as it arrives, never whole in memory.
                let mut body = got.into_stream();
                let mut size = 0u64;
                while let Some(chunk) = body.next().await {
                    let chunk = chunk?;
                    out.write_all(&chunk).await?;
                    size += chunk.len() as u64;
                }
                size
            }
        };
        out.flush().await?;
        Ok(size)
    }

    /// Removes a stored file; removing a missing file is not an error.
    pub async fn delete(&self, id: &str) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Redis { redis, keys } => {
                let mut conn = redis.get().await?;
                let chunks: Option<u64> = conn.hget(keys.upload(id), "chunks").await?;
                // An interrupted upload has no chunk count: scan this file's chunk keys instead.
                let mut doomed: Vec<String> = match chunks {
                    Some(n) => (0..n).map(|i| keys.upload_chunk(id, i)).collect(),
                    None => {
                        let pattern = format!("{}:*", keys.upload(id));
                        let mut it: redis::AsyncIter<String> = conn.scan_match(pattern).await?;
                        let mut found = Vec::new();
                        while let Some(k) = futures_next(&mut it).await {
                            found.push(k);
                        }
                        found
                    }
                };
                doomed.push(keys.upload(id));
                for batch in doomed.chunks(500) {
                    let _: () = conn.del(batch).await?;
                }
                Ok(())
            }
            Backend::Dir { root } => {
                for p in [
                    root.join(id),
                    root.join(format!("{id}.name")),
                    root.join(format!("{id}.part")),
                ] {
                    match tokio::fs::remove_file(&p).await {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(())
            }
            Backend::S3 { s3, prefix } => match s3.delete(&object_path(prefix, id)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e.into()),
            },
        }
    }

    /// Whether an upload is stored whole (it can be read again).
    pub async fn exists(&self, id: &str) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Redis { redis, keys } => {
                let complete: Option<String> =
                    redis.get().await?.hget(keys.upload(id), "complete").await?;
                Ok(complete.as_deref() == Some("1"))
            }
            Backend::Dir { root } => Ok(tokio::fs::try_exists(root.join(id)).await?),
            Backend::S3 { s3, prefix } => match s3.head(&object_path(prefix, id)).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(e.into()),
            },
        }
    }

    /// A job is done with its upload: deleted now, or kept for the retention period and then
    /// deleted by a later [`UploadStore::sweep`].
    pub async fn release(&self, id: &str) -> Result<(), StoreError> {
        self.release_after(id, Duration::ZERO).await
    }

    /// [`UploadStore::release`], keeping the upload at least `keep` (a file the treasurer may
    /// want read again); kept uploads still go early when an upload needs the room.
    pub async fn release_after(&self, id: &str, keep: Duration) -> Result<(), StoreError> {
        let retention = self.retention.max(keep);
        match &self.schedule {
            Some((redis, keys)) if !retention.is_zero() => {
                let when = chrono::Utc::now().timestamp()
                    + i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
                let _: () = redis
                    .get()
                    .await?
                    .zadd(keys.uploads_expiring(), id, when)
                    .await?;
                Ok(())
            }
            _ => self.delete(id).await,
        }
    }

    /// Deletes up to `max` kept uploads (those held for `UPLOAD_RETENTION_HOURS` after their job
    /// succeeded), oldest first, before their time: an upload waiting to be read needs the room
    /// more. Returns how many went.
    pub async fn release_kept(&self, max: usize) -> Result<usize, StoreError> {
        let Some((redis, keys)) = &self.schedule else {
            return Ok(0);
        };
        let key = keys.uploads_expiring();
        let oldest: Vec<(String, f64)> = redis.get().await?.zpopmin(&key, max as isize).await?;
        let mut gone = 0;
        for (id, _) in oldest {
            match self.delete(&id).await {
                Ok(()) => gone += 1,
                Err(e) => tracing::warn!(error = %e, "kept upload not deleted early"),
            }
        }
        Ok(gone)
    }

    /// Deletes kept uploads whose retention has passed, at most 50 per call (it runs between
    /// jobs); returns how many went.
    pub async fn sweep(&self) -> Result<usize, StoreError> {
        let Some((redis, keys)) = &self.schedule else {
            return Ok(0);
        };
        let key = keys.uploads_expiring();
        let due: Vec<String> = redis
            .get()
            .await?
            .zrangebyscore_limit(&key, "-inf", chrono::Utc::now().timestamp(), 0, 50)
            .await?;
        let mut gone = 0;
        for id in due {
            match self.delete(&id).await {
                Ok(()) => {
                    let _: () = redis.get().await?.zrem(&key, &id).await?;
                    gone += 1;
                }
                Err(e) => tracing::warn!(error = %e, "kept upload not deleted"),
            }
        }
        Ok(gone)
    }
}

/// Streams into chunk keys. A connection is taken per chunk, not held for the whole upload:
/// a slow client must not keep one of the web pool's few connections.
async fn put_redis<R: AsyncRead + Unpin>(
    redis: &RedisPool,
    keys: &Keys,
    id: &str,
    name: &str,
    reader: &mut R,
    buf: &mut [u8],
    max_bytes: u64,
) -> Result<u64, StoreError> {
    let meta = keys.upload(id);
    let ttl = UPLOAD_TTL.as_secs();
    // Incomplete until the last chunk is in: a reader never sees half a file as whole.
    let mut pipe = redis::pipe();
    pipe.hset_multiple(&meta, &[("name", name), ("complete", "0")])
        .ignore()
        .expire(&meta, ttl as i64)
        .ignore();
    pipe.query_async::<()>(&mut redis.get().await?).await?;
    let (mut size, mut chunks) = (0u64, 0u64);
    while let Some(n) = next_chunk(reader, buf, &mut size, max_bytes).await? {
        let _: () = redis
            .get()
            .await?
            .set_ex(keys.upload_chunk(id, chunks), &buf[..n], ttl)
            .await?;
        chunks += 1;
    }
    let fields = [
        ("size", size.to_string()),
        ("chunks", chunks.to_string()),
        ("complete", "1".into()),
    ];
    let _: () = redis.get().await?.hset_multiple(&meta, &fields).await?;
    Ok(size)
}

/// Streams into `{id}.part`, renamed to `{id}` once complete: a reader never sees half a file.
async fn put_dir<R: AsyncRead + Unpin>(
    root: &Path,
    id: &str,
    name: &str,
    reader: &mut R,
    max_bytes: u64,
) -> Result<u64, StoreError> {
    tokio::fs::create_dir_all(root).await?;
    let part = root.join(format!("{id}.part"));
    let mut file = tokio::fs::File::create(&part).await?;
    let mut buf = vec![0u8; CHUNK_BYTES];
    let mut size = 0u64;
    while let Some(n) = next_chunk(reader, &mut buf, &mut size, max_bytes).await? {
        file.write_all(&buf[..n]).await?;
    }
    file.flush().await?;
    file.sync_all().await?;
    tokio::fs::write(root.join(format!("{id}.name")), name).await?;
    tokio::fs::rename(&part, root.join(id)).await?;
    Ok(size)
}

/// Streams into one object: a file that fits in one part with a single PUT, a larger one as a
/// multipart upload of [`PART_BYTES`] parts, one part in memory at a time (each is sent before
/// the next is read). A failed multipart upload is aborted, so its parts are not left behind.
async fn put_s3<R: AsyncRead + Unpin>(
    s3: &AmazonS3,
    path: &ObjectPath,
    reader: &mut R,
    max_bytes: u64,
) -> Result<u64, StoreError> {
    // A small limit needs no 5 MiB buffer: one byte past it is enough to refuse the file.
    let part_len =
        usize::try_from(max_bytes.saturating_add(1)).map_or(PART_BYTES, |m| m.min(PART_BYTES));
    let mut size = 0u64;
    let first = read_part(reader, part_len, &mut size, max_bytes).await?;
    if first.len() < part_len {
        // The reader ended inside the first part (next_chunk refused anything over the limit).
        s3.put(path, PutPayload::from(first)).await?;
        return Ok(size);
    }
    let mut upload = s3.put_multipart(path).await?;
    let sent = async {
        upload.put_part(PutPayload::from(first)).await?;
        loop {
            let part = read_part(reader, PART_BYTES, &mut size, max_bytes).await?;
            if part.is_empty() {
                break;
            }
            upload.put_part(PutPayload::from(part)).await?;
        }
        upload.complete().await?;
        Ok::<_, StoreError>(size)
    }
    .await;
    if sent.is_err() {
        if let Err(e) = upload.abort().await {
            tracing::warn!(object = %path, error = %e, "could not abort a failed multipart upload");
        }
    }
    sent
}

/// Up to `len` bytes of the reader, counted against `max_bytes`; empty at the end.
async fn read_part<R: AsyncRead + Unpin>(
    reader: &mut R,
    len: usize,
    size: &mut u64,
    max_bytes: u64,
) -> Result<Bytes, StoreError> {
    let mut part = vec![0u8; len];
    let n = next_chunk(reader, &mut part, size, max_bytes)
        .await?
        .unwrap_or(0);
    part.truncate(n);
    Ok(Bytes::from(part))
}

/// The object key of stored file `id`: `{prefix}/{id}`.
fn object_path(prefix: &ObjectPath, id: &str) -> ObjectPath {
    prefix.clone().join(id)
}

/// Builds the S3 store from `builder` (environment or explicit options).
fn s3_store(
    builder: AmazonS3Builder,
    bucket: &str,
    prefix: ObjectPath,
) -> Result<Backend, StoreError> {
    // object_store would only refuse an http:// endpoint at the first request, with a message
    // that does not name the setting: say so now.
    let endpoint = builder
        .get_config_value(&AmazonS3ConfigKey::S3Endpoint)
        .or_else(|| builder.get_config_value(&AmazonS3ConfigKey::Endpoint));
    let allow_http = builder
        .get_config_value(&AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp))
        .is_some_and(|v| {
            ["1", "true", "on", "yes", "y"].contains(&v.to_ascii_lowercase().as_str())
        });
    if let Some(endpoint) = endpoint {
        // An empty AWS_ENDPOINT_URL= (an env file's placeholder) would make every URL relative.
        if endpoint.trim().is_empty() {
            return Err(StoreError::S3Config(
                "the endpoint is set but empty; unset AWS_ENDPOINT_URL / AWS_ENDPOINT for AWS \
                 itself"
                    .into(),
            ));
        }
        if endpoint.starts_with("http://") && !allow_http {
            return Err(StoreError::S3Config(format!(
                "the endpoint {endpoint} is plain http; set AWS_ALLOW_HTTP=true to allow it"
            )));
        }
    }
    let s3 = builder
        .with_bucket_name(bucket)
        .build()
        .map_err(|e| StoreError::S3Config(e.to_string()))?;
    Ok(Backend::S3 {
        s3: Arc::new(s3),
        prefix,
    })
}

async fn futures_next(it: &mut redis::AsyncIter<'_, String>) -> Option<String> {
    match it.next_item().await {
        Some(Ok(k)) => Some(k),
        _ => None,
    }
}

/// The next chunk of an upload, counted against `max_bytes`; `None` at the end.
async fn next_chunk<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut [u8],
    size: &mut u64,
    max_bytes: u64,
) -> Result<Option<usize>, StoreError> {
    let n = read_full(reader, buf).await?;
    if n == 0 {
        return Ok(None);
    }
    *size += n as u64;
    if *size > max_bytes {
        return Err(StoreError::TooLarge { limit: max_bytes });
    }
    Ok(Some(n))
}

/// Fills `buf` as far as the reader allows; 0 only at the end.
async fn read_full<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = reader.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}
