//! One suite for the three upload stores: every case runs against the Redis store (a real Redis:
//! REDIS_URL, else 127.0.0.1:6379; `make redis`), the dir store (a temp dir) and the S3 store (a
//! real moto_server; `make moto`). Each test owns a fresh key prefix, directory or bucket, and
//! proves that refused and broken uploads leave nothing behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use fom_core::keys::Keys;
use fom_core::store::{StoreError, StoreSpec, UploadStore, CHUNK_BYTES, PART_BYTES};
use fom_testkit::moto::Moto;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use tokio::io::{AsyncRead, ReadBuf};

/// Where the S3 store keeps its objects in each test's bucket.
const S3_PREFIX: &str = "uploads/incoming";

/// A store under test and what is needed to look behind it.
struct Backend {
    store: UploadStore,
    kind: Kind,
}

enum Kind {
    Redis { conn: ConnectionManager, keys: Keys },
    Dir { dir: tempfile::TempDir },
    S3 { moto: Moto, bucket: String },
}

fn unique(tag: &str) -> String {
    format!("{tag}-{}", uuid::Uuid::new_v4().simple())
}

async fn redis_conn() -> ConnectionManager {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = redis::Client::open(url).unwrap();
    ConnectionManager::new(client)
        .await
        .expect("Redis must answer (make redis)")
}

impl Backend {
    async fn redis() -> Self {
        let conn = redis_conn().await;
        let keys = Keys::new(unique("test-store"));
        let store = UploadStore::from_spec("redis", conn.clone(), keys.clone()).unwrap();
        Self {
            store,
            kind: Kind::Redis { conn, keys },
        }
    }

    async fn dir() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let spec = format!("dir:{}", dir.path().display());
        let store = UploadStore::from_spec(&spec, redis_conn().await, Keys::new("unused")).unwrap();
        Self {
            store,
            kind: Kind::Dir { dir },
        }
    }

    async fn s3() -> Self {
        let moto = Moto::start().expect("moto_server must start");
        let bucket = unique("fom-test");
        moto.create_bucket(&bucket).unwrap();
        let store = UploadStore::s3_with(
            &bucket,
            S3_PREFIX,
            [
                ("aws_access_key_id", "test"),
                ("aws_secret_access_key", "test"),
                ("aws_region", "us-east-1"),
                ("aws_endpoint", moto.endpoint()),
                ("aws_allow_http", "true"),
            ],
        )
        .unwrap();
        Self {
            store,
            kind: Kind::S3 { moto, bucket },
        }
    }

    /// Everything the store holds for this test: Redis keys under the prefix, files in the
    /// directory, objects under the S3 prefix and unfinished multipart uploads.
    async fn held(&mut self) -> Vec<String> {
        match &mut self.kind {
            Kind::Redis { conn, keys } => redis::cmd("KEYS")
                .arg(format!("{}:*", keys.prefix()))
                .query_async(conn)
                .await
                .unwrap(),
            Kind::Dir { dir } => std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Kind::S3 { moto, bucket } => {
                let mut held = moto.object_keys(bucket, S3_PREFIX).unwrap();
                held.extend(
                    moto.multipart_uploads(bucket)
                        .unwrap()
                        .into_iter()
                        .map(|k| format!("unfinished multipart upload of {k}")),
                );
                held
            }
        }
    }

    async fn assert_empty(&mut self, after: &str) {
        let held = self.held().await;
        assert!(held.is_empty(), "{after} left {held:?}");
    }

    /// Removes what a test left (the temp dir and moto go when dropped).
    async fn cleanup(mut self) {
        if let Kind::Redis { conn, keys } = &mut self.kind {
            let found: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}:*", keys.prefix()))
                .query_async(conn)
                .await
                .unwrap();
            if !found.is_empty() {
                let _: () = conn.del(found).await.unwrap();
            }
        }
    }
}

/// Varied, non-repeating bytes (every byte value occurs).
fn binary(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u8(..)).collect()
}

/// Serves `data` in reads of at most `step` bytes (not aligned with chunks or parts), failing
/// with a broken-pipe error once `fail_at` bytes are out, like a client that hangs up.
struct Trickle {
    data: Vec<u8>,
    pos: usize,
    step: usize,
    fail_at: Option<usize>,
}

impl Trickle {
    fn new(data: Vec<u8>) -> Self {
        Self {
            data,
            pos: 0,
            step: 100_003,
            fail_at: None,
        }
    }

    fn failing_at(data: Vec<u8>, fail_at: usize) -> Self {
        Self {
            fail_at: Some(fail_at),
            ..Self::new(data)
        }
    }
}

impl AsyncRead for Trickle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.fail_at.is_some_and(|f| self.pos >= f) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "client went away",
            )));
        }
        let end = self
            .data
            .len()
            .min(self.pos + self.step.min(buf.remaining()));
        let end = self.fail_at.map_or(end, |f| end.min(f));
        let pos = self.pos;
        buf.put_slice(&self.data[pos..end]);
        self.pos = end;
        Poll::Ready(Ok(()))
    }
}

/// Stores `data`, checks what the store then holds, fetches it back byte for byte, deletes it.
async fn round_trip(b: &mut Backend, name: &str, data: Vec<u8>) {
    let len = data.len() as u64;
    let stored = b
        .store
        .put(name, Trickle::new(data.clone()), 50 * 1024 * 1024)
        .await
        .unwrap();
    assert_eq!(stored.size, len);
    assert_eq!(stored.name, name);
    let held = b.held().await;
    assert!(
        !held.is_empty() && held.iter().all(|k| k.contains(&stored.id)),
        "holds only this file: {held:?}"
    );
    if let Kind::S3 { .. } = b.kind {
        assert_eq!(
            held,
            [format!("{S3_PREFIX}/{}", stored.id)],
            "{{prefix}}/{{id}}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    assert_eq!(b.store.fetch_to(&stored.id, &dest).await.unwrap(), len);
    let back = std::fs::read(&dest).unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "the bytes come back unchanged");
    b.store.delete(&stored.id).await.unwrap();
    b.assert_empty("a deleted file").await;
}

async fn large_file_round_trip(mut b: Backend) {
    // One byte past a whole part: S3 uploads two parts, the last of one byte; Redis and dir
    // write 21 chunks, the last of one byte.
    round_trip(&mut b, "deposit.pdf", binary(PART_BYTES + 1, 1)).await;
    // Exactly one part, and several parts with a ragged end.
    round_trip(&mut b, "exact.pdf", binary(PART_BYTES, 2)).await;
    round_trip(
        &mut b,
        "three.pdf",
        binary(2 * PART_BYTES + 3 * CHUNK_BYTES + 7, 3),
    )
    .await;
    b.cleanup().await;
}

async fn small_file_round_trip(mut b: Backend) {
    round_trip(
        &mut b,
        "gifts.csv",
        b"date,amount\n2025-01-02,10.00\n".to_vec(),
    )
    .await;
    b.cleanup().await;
}

async fn empty_file_round_trip(mut b: Backend) {
    round_trip(&mut b, "empty.pdf", Vec::new()).await;
    b.cleanup().await;
}

async fn too_large_leaves_nothing(mut b: Backend) {
    let data = binary(2 * PART_BYTES + 10, 4);
    // Refused within the first chunk, and after a whole part was sent (S3: a multipart upload
    // under way, which must be aborted).
    for limit in [1000, PART_BYTES as u64 + 100] {
        let refused = b
            .store
            .put("big.pdf", Trickle::new(data.clone()), limit)
            .await;
        assert!(
            matches!(refused, Err(StoreError::TooLarge { limit: l }) if l == limit),
            "{refused:?}"
        );
        b.assert_empty(&format!("a file refused at {limit} bytes"))
            .await;
    }
    // The limit itself is allowed.
    let exact = b
        .store
        .put("exact.pdf", Trickle::new(binary(4096, 5)), 4096)
        .await
        .unwrap();
    assert_eq!(exact.size, 4096);
    b.store.delete(&exact.id).await.unwrap();
    b.cleanup().await;
}

async fn reader_error_leaves_nothing(mut b: Backend) {
    let data = binary(2 * PART_BYTES, 6);
    // Early, and after a whole part was sent.
    for fail_at in [1000, PART_BYTES + 300_000] {
        let broken = b
            .store
            .put(
                "broken.pdf",
                Trickle::failing_at(data.clone(), fail_at),
                u64::MAX,
            )
            .await;
        assert!(
            matches!(&broken, Err(StoreError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe),
            "{broken:?}"
        );
        b.assert_empty(&format!("a reader failing at byte {fail_at}"))
            .await;
    }
    b.cleanup().await;
}

async fn missing_id_is_not_found(mut b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let missing = uuid::Uuid::new_v4().simple().to_string();
    let got = b
        .store
        .fetch_to(&missing, &dir.path().join("out.bin"))
        .await;
    assert!(
        matches!(&got, Err(StoreError::NotFound(id)) if *id == missing),
        "{got:?}"
    );
    b.assert_empty("fetching a missing file").await;
    b.cleanup().await;
}

async fn delete_is_idempotent(mut b: Backend) {
    let stored = b
        .store
        .put("twice.pdf", &b"%PDF-1.4 tiny"[..], 1024)
        .await
        .unwrap();
    b.store.delete(&stored.id).await.unwrap();
    b.store.delete(&stored.id).await.unwrap();
    b.store
        .delete(&uuid::Uuid::new_v4().simple().to_string())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        b.store.fetch_to(&stored.id, &dir.path().join("x")).await,
        Err(StoreError::NotFound(_))
    ));
    b.assert_empty("deleting twice").await;
    b.cleanup().await;
}

/// Every case against every store: `redis_store::case`, `dir_store::case`, `s3_store::case`.
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        suite!(@store redis_store, redis, $($case),*);
        suite!(@store dir_store, dir, $($case),*);
        suite!(@store s3_store, s3, $($case),*);
    };
    (@store $module:ident, $backend:ident, $($case:ident),*) => {
        mod $module {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::Backend::$backend().await).await;
                }
            )*
        }
    };
}

suite!(
    large_file_round_trip,
    small_file_round_trip,
    empty_file_round_trip,
    too_large_leaves_nothing,
    reader_error_leaves_nothing,
    missing_id_is_not_found,
    delete_is_idempotent,
);

#[tokio::test]
async fn upload_store_specs() {
    for ok in [
        "redis",
        "dir:/tmp/x",
        "s3://bucket",
        "s3://bucket/",
        "s3://bucket/some/prefix",
    ] {
        assert!(ok.parse::<StoreSpec>().is_ok(), "{ok}");
    }
    for bad in [
        "",
        "dir:",
        "s3://",
        "s3:///prefix",
        "s3:nope",
        "s3://bucket/a//b",
        "s3://bucket/../up",
        "S3",
    ] {
        let err = bad.parse::<StoreSpec>().unwrap_err();
        assert!(matches!(err, StoreError::BadSpec(_)), "{bad}");
        let msg = err.to_string();
        assert!(
            msg.contains("\"redis\"") && msg.contains("dir:/path") && msg.contains("s3://bucket"),
            "{msg}"
        );
    }
    let conn = redis_conn().await;
    assert!(matches!(
        UploadStore::from_spec("s3:nope", conn.clone(), Keys::new("unused")),
        Err(StoreError::BadSpec(_))
    ));
    // A plain-http endpoint without AWS_ALLOW_HTTP is named at start-up, not at the first upload.
    let refused =
        UploadStore::s3_with("bucket", "", [("aws_endpoint", "http://127.0.0.1:9")]).err();
    assert!(
        matches!(&refused, Some(StoreError::S3Config(m)) if m.contains("AWS_ALLOW_HTTP=true")),
        "{refused:?}"
    );
    let empty = UploadStore::s3_with("bucket", "", [("aws_endpoint", "")]).err();
    assert!(
        matches!(&empty, Some(StoreError::S3Config(m)) if m.contains("empty")),
        "{empty:?}"
    );
    // Half a key pair is a setup error that names the variables to check.
    let half = UploadStore::s3_with("bucket", "", [("aws_access_key_id", "AKIA")]).err();
    let msg = half.map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("AWS_SECRET_ACCESS_KEY"), "{msg}");
}

#[tokio::test]
async fn kept_uploads_give_way_oldest_first() {
    let b = Backend::redis().await;
    let store = b.store.clone().with_retention(Duration::from_secs(3600));
    let mut ids = Vec::new();
    for i in 0..3 {
        let s = store
            .put(&format!("kept-{i}.pdf"), &b"%PDF-1.4 kept"[..], 1024)
            .await
            .unwrap();
        store.release(&s.id).await.unwrap();
        ids.push(s.id);
        // Kept until a second later each, so their order is known.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    assert_eq!(store.release_kept(2).await.unwrap(), 2);
    let dir = tempfile::tempdir().unwrap();
    for (i, id) in ids.iter().enumerate() {
        let got = store.fetch_to(id, &dir.path().join(format!("f{i}"))).await;
        if i < 2 {
            assert!(matches!(got, Err(StoreError::NotFound(_))), "{i}: {got:?}");
        } else {
            assert!(got.is_ok(), "the newest kept upload stays: {got:?}");
        }
    }
    assert_eq!(store.release_kept(5).await.unwrap(), 1);
    assert_eq!(store.release_kept(5).await.unwrap(), 0);
    let mut b = b;
    b.assert_empty("releasing every kept upload").await;
    b.cleanup().await;
}
