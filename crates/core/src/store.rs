//! Where uploaded files wait for the worker: `UPLOAD_STORE=redis` (chunked keys with a TTL; the
//! default, needing nothing but the Redis add-on) or `UPLOAD_STORE=dir:/path` (one host or a
//! compose volume). Files go in and out chunk by chunk: never whole in memory.

use std::path::{Path, PathBuf};

use redis::AsyncCommands;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::keys::{Keys, UPLOAD_TTL};
use crate::redis_conn::RedisPool;

/// Chunk size for the Redis store: small enough for Redis, large enough to keep round trips few.
pub const CHUNK_BYTES: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("UPLOAD_STORE {0:?} is not understood; use \"redis\" or \"dir:/path\"")]
    BadSpec(String),
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
}

/// Checks an `UPLOAD_STORE` value without connecting to anything.
pub fn check_spec(spec: &str) -> Result<(), StoreError> {
    match spec.trim() {
        "redis" => Ok(()),
        s if s.strip_prefix("dir:").is_some_and(|p| !p.is_empty()) => Ok(()),
        _ => Err(StoreError::BadSpec(spec.to_string())),
    }
}

/// A file in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    pub id: String,
    pub name: String,
    pub size: u64,
}

#[derive(Clone)]
pub enum UploadStore {
    Redis { redis: RedisPool, keys: Keys },
    Dir { root: PathBuf },
}

impl UploadStore {
    /// From `UPLOAD_STORE`: "redis" (uses `redis`) or "dir:/path".
    pub fn from_spec(
        spec: &str,
        redis: impl Into<RedisPool>,
        keys: Keys,
    ) -> Result<Self, StoreError> {
        match spec.trim() {
            "redis" => Ok(Self::Redis {
                redis: redis.into(),
                keys,
            }),
            s => match s.strip_prefix("dir:") {
                Some(p) if !p.is_empty() => Ok(Self::Dir {
                    root: PathBuf::from(p),
                }),
                _ => Err(StoreError::BadSpec(spec.to_string())),
            },
        }
    }

    /// Streams `reader` into the store, refusing more than `max_bytes`.
    pub async fn put<R: AsyncRead + Unpin>(
        &self,
        name: &str,
        mut reader: R,
        max_bytes: u64,
    ) -> Result<StoredFile, StoreError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut buf = vec![0u8; CHUNK_BYTES];
        match self {
            Self::Redis { redis, keys } => {
                let written = put_redis(redis, keys, &id, name, &mut reader, &mut buf, max_bytes).await;
                match written {
                    Ok(size) => Ok(StoredFile {
                        id,
                        name: name.to_string(),
                        size,
                    }),
                    Err(e) => {
                        // Nothing of a refused or broken upload stays behind.
                        self.delete(&id).await?;
                        Err(e)
                    }
                }
            }
            Self::Dir { root } => {
                tokio::fs::create_dir_all(root).await?;
                let part = root.join(format!("{id}.part"));
                let mut file = tokio::fs::File::create(&part).await?;
                let mut size = 0u64;
                loop {
                    let n = match next_chunk(&mut reader, &mut buf, &mut size, max_bytes).await {
                        Ok(Some(n)) => n,
                        Ok(None) => break,
                        Err(e) => {
                            drop(file);
                            tokio::fs::remove_file(&part).await?;
                            return Err(e);
                        }
                    };
                    file.write_all(&buf[..n]).await?;
                }
                file.flush().await?;
                file.sync_all().await?;
                tokio::fs::write(root.join(format!("{id}.name")), name).await?;
                tokio::fs::rename(&part, root.join(&id)).await?;
                Ok(StoredFile {
                    id,
                    name: name.to_string(),
                    size,
                })
            }
        }
    }

    /// Streams a stored file to `dest` (a local temp file); returns its size.
    pub async fn fetch_to(&self, id: &str, dest: &Path) -> Result<u64, StoreError> {
        let mut out = tokio::fs::File::create(dest).await?;
        let size = match self {
            Self::Redis { redis, keys } => {
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
            Self::Dir { root } => {
                let mut src =
                    tokio::fs::File::open(root.join(id))
                        .await
                        .map_err(|e| match e.kind() {
                            std::io::ErrorKind::NotFound => StoreError::NotFound(id.to_string()),
                            _ => StoreError::Io(e),
                        })?;
                tokio::io::copy(&mut src, &mut out).await?
            }
        };
        out.flush().await?;
        Ok(size)
    }

    /// Removes a stored file; removing a missing file is not an error.
    pub async fn delete(&self, id: &str) -> Result<(), StoreError> {
        match self {
            Self::Redis { redis, keys } => {
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
            Self::Dir { root } => {
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
        }
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
