//! `POST /api/deposits/{id}/files`: multipart uploads streamed part by part into the upload
//! store (never whole in memory), one verdict per file and one job per file, except that the
//! photos of one request share a job (read together, so a check meets its envelope). A refused
//! file does not sink the others; a file cut off mid-stream leaves nothing behind and gets no
//! job. The body's bytes, parts and rate are limited as it streams (`body_guard`), so the
//! verdicts are bounded.

use std::cell::Cell;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_multipart::{Field, Multipart};
use actix_web::http::{header, ConnectionType, StatusCode};
use actix_web::{post, web, HttpRequest, HttpResponse, ResponseError};
use fom_core::filetype::{FileKind, SniffError};
use fom_core::intake::{IntakeError, Stored};
use fom_core::redis_conn::memory_info;
use fom_core::store::StoreError;
use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;
use tokio_util::io::StreamReader;

use crate::body_guard::{BodyGuard, BodyLimits, Cut, Holding};
use crate::config::Config;
use crate::error_code::ErrorCode;
use crate::http::ApiError;
use crate::state::AppState;

/// What happened to one uploaded file.
#[derive(Serialize, Debug)]
pub struct Verdict {
    /// The file name as stored (sanitised).
    name: String,
    accepted: bool,
    /// HTTP-style status of this file: 202 accepted, 400, 413, 415, 503.
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    job_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<ErrorCode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl Verdict {
    fn rejected(name: &str, status: StatusCode, code: ErrorCode, error: String) -> Self {
        Self {
            name: name.to_string(),
            accepted: false,
            status: status.as_u16(),
            file_id: None,
            job_id: None,
            kind: None,
            size: None,
            code: Some(code),
            error: Some(error),
        }
    }
}

#[derive(Serialize)]
struct UploadAnswer {
    deposit_id: String,
    accepted: usize,
    rejected: usize,
    files: Vec<Verdict>,
}

/// A file name safe to show and store: the last path component, no control characters, no
/// bidirectional controls (U+202E would show `gpj.exe` as `exe.jpg`), no leading dots, at most
/// 200 characters. Stored files are named by id, never by this.
pub fn sanitize_name(raw: &str, n: usize) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && !is_bidi_control(*c))
        .collect::<String>()
        // ". .x" must not come out as ".x": dots and spaces go together.
        .trim_start_matches(|c: char| c == '.' || c.is_whitespace())
        .chars()
        .take(200)
        .collect::<String>()
        .trim_end()
        .to_string();
    if cleaned.is_empty() {
        format!("upload-{n}")
    } else {
        cleaned
    }
}

/// Marks and embeddings that reorder how text is shown (Unicode's bidirectional controls).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[post("/api/deposits/{id}/files")]
pub async fn upload(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<crate::ids::DepositId>,
    body: web::Payload,
) -> HttpResponse {
    let cfg = &state.cfg;
    let (body, cut) = BodyGuard::new(
        body,
        BodyLimits {
            max_bytes: cfg.max_upload_bytes,
            min_bytes_per_sec: cfg.upload_min_bytes_per_sec,
            window: cfg.upload_rate_window,
        },
    );
    let mut parts = Multipart::new(req.headers(), body);
    let (mut res, read_to_end) = match take_upload(&req, &state, &id, &mut parts, &cut).await {
        Ok(answer) => answer,
        Err(e) => (e.error_response(), false),
    };
    if read_to_end {
        return res;
    }
    // Stopped before the end of the body (a limit, a storage error, a refusal before reading):
    // close the connection rather than read the rest.
    res.head_mut().set_connection_type(ConnectionType::Close);
    res.map_body(|_, b| Holding::new(b, parts))
        .map_into_boxed_body()
}

/// Takes the files of one upload. The answer, and whether the body was read to its end.
async fn take_upload(
    req: &HttpRequest,
    state: &AppState,
    id: &str,
    payload: &mut Multipart,
    cut: &Cell<Option<Cut>>,
) -> Result<(HttpResponse, bool), ApiError> {
    let cfg = &state.cfg;
    // Load shedding: over the critical threshold, new work waits; everything else answers.
    let rss = fom_core::memory::rss_mb();
    if rss >= cfg.monitor.thresholds.critical_mb {
        cfg.monitor.log("upload refused: critical RSS");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Busy,
            "the server is short of memory right now; try the upload again in a minute",
        )
        .with_retry_after(30));
    }
    if state.services.deposits.get(id).await?.is_none() {
        return Err(ApiError::not_found("deposit"));
    }
    let declared: Option<u64> = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    if declared.is_some_and(|n| n > cfg.max_upload_bytes) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UploadTooLarge,
            format!(
                "this upload is larger than {} files of {} MB; send fewer files at a time",
                cfg.max_upload_files,
                cfg.services.max_file_bytes / (1024 * 1024)
            ),
        ));
    }
    // Held until this request ends: the bytes count against the room while they arrive.
    let _room = if state.services.store.is_redis() {
        take_room(state, declared.unwrap_or(cfg.services.max_file_bytes)).await?
    } else {
        None
    };

    // At most `max_upload_parts` verdicts, plus the one that says why reading stopped.
    let mut verdicts: Vec<Verdict> = Vec::new();
    let mut stopped: Option<Verdict> = None;
    let mut part_count = 0usize;
    let mut files = 0usize;
    let mut photos: Vec<Stored> = Vec::new();
    while stopped.is_none() {
        let field = match payload.next().await {
            None => break,
            Some(Ok(f)) => f,
            Some(Err(e)) => {
                // A malformed, cut-off or over-limit body: what came before stands, nothing after.
                tracing::warn!(error = %e, "multipart body ended badly");
                stopped = Some(body_ended(cfg, cut, "", Some(malformed())));
                break;
            }
        };
        part_count += 1;
        if part_count > cfg.max_upload_parts {
            tracing::warn!(
                parts = cfg.max_upload_parts,
                "upload refused: too many parts"
            );
            stopped = Some(Verdict::rejected(
                "",
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::TooManyParts,
                format!(
                    "this upload holds more than {} parts, so the server stopped reading it; \
                     send at most {} files at a time",
                    cfg.max_upload_parts, cfg.max_upload_files
                ),
            ));
            break;
        }
        if field.name() != Some("files") {
            if !drain(field).await {
                stopped = Some(body_ended(cfg, cut, "", Some(malformed())));
            }
            continue;
        }
        files += 1;
        let raw_name = field
            .content_disposition()
            .and_then(|cd| cd.get_filename().map(str::to_string))
            .unwrap_or_default();
        let name = sanitize_name(&raw_name, files);
        if files > cfg.max_upload_files {
            let refused = Verdict::rejected(
                &name,
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::TooManyFiles,
                format!(
                    "only {} files can be sent at once; send this one again on its own",
                    cfg.max_upload_files
                ),
            );
            if drain(field).await {
                verdicts.push(refused);
            } else {
                stopped = Some(body_ended(cfg, cut, &name, None));
            }
            continue;
        }
        match accept_file(state, id, &name, field, &mut photos).await {
            ControlFlow::Continue(v) => verdicts.push(v),
            ControlFlow::Break(v) => stopped = Some(body_ended(cfg, cut, &name, Some(v))),
        }
    }
    // The request's photos become one job, so a check and its envelope are read together.
    if !photos.is_empty() {
        queue_photos(state, id, &photos, &mut verdicts).await;
    }
    let read_to_end = stopped.is_none();
    let ended = stopped.as_ref().map(|v| v.status);
    verdicts.extend(stopped);
    let accepted = verdicts.iter().filter(|v| v.accepted).count();
    // One audit event per named file: what arrived and what became of it (at most
    // `max_upload_parts` + 1 verdicts, so bounded).
    for v in verdicts.iter().filter(|v| !v.name.is_empty()) {
        let verdict = if v.accepted {
            "accepted".to_string()
        } else {
            v.code
                .map_or_else(|| v.status.to_string(), |c| c.to_string())
        };
        let details = serde_json::json!({
            "deposit_id": id, "file": v.name, "size": v.size, "verdict": verdict, "job_id": v.job_id,
        });
        crate::audit::record(req, state, fom_core::audit::AuditKind::Upload, details).await;
    }
    if verdicts.is_empty() {
        return Err(ApiError::bad_request(
            ErrorCode::NoFiles,
            "no files received: send multipart/form-data with parts named \"files\"",
        ));
    }
    // Nothing accepted: the reason reading stopped, else the first refusal, is the answer's.
    let status = if accepted > 0 {
        StatusCode::ACCEPTED
    } else {
        ended
            .or_else(|| verdicts.first().map(|v| v.status))
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::BAD_REQUEST)
    };
    let res = HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(UploadAnswer {
            deposit_id: id.to_string(),
            accepted,
            rejected: verdicts.len() - accepted,
            files: verdicts,
        });
    Ok((res, read_to_end))
}

/// The verdict for the part being read when reading stopped: the body guard's reason when it
/// ended the body, else `otherwise` (a storage error, or the file cut off), else "interrupted".
fn body_ended(
    cfg: &Config,
    cut: &Cell<Option<Cut>>,
    name: &str,
    otherwise: Option<Verdict>,
) -> Verdict {
    match cut.get() {
        Some(Cut::TooLarge) => {
            tracing::warn!(limit = cfg.max_upload_bytes, "upload cut: too many bytes");
            Verdict::rejected(
                name,
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::UploadTooLarge,
                format!(
                    "this upload is larger than {} files of {} MB, so the server stopped \
                     reading it there; send fewer files at a time",
                    cfg.max_upload_files,
                    cfg.services.max_file_bytes / (1024 * 1024)
                ),
            )
        }
        Some(Cut::TooSlow) => {
            tracing::warn!(
                min_bytes_per_sec = cfg.upload_min_bytes_per_sec,
                window_secs = cfg.upload_rate_window.as_secs(),
                "upload cut: too slow"
            );
            Verdict::rejected(
                name,
                StatusCode::REQUEST_TIMEOUT,
                ErrorCode::UploadTooSlow,
                format!(
                    "the upload arrived too slowly (under {} KB a second for {} seconds), so \
                     the server stopped it there; check the connection and send the file again",
                    cfg.upload_min_bytes_per_sec.div_ceil(1024),
                    cfg.upload_rate_window.as_secs()
                ),
            )
        }
        None => otherwise.unwrap_or_else(|| interrupted(name)),
    }
}

/// Room in the Redis store held for one upload while it is received.
struct RoomHeld<'a> {
    reserved: &'a AtomicU64,
    bytes: u64,
}

impl Drop for RoomHeld<'_> {
    fn drop(&mut self) {
        self.reserved.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

/// With the Redis store (mini plans: 25 MB, noeviction) an upload is taken only when Redis has
/// room for it and `REDIS_MIN_HEADROOM_MB` besides (at the limit every write, sessions and
/// jobs included, fails), counting uploads still arriving. Without room it is not refused
/// outright: while files ahead of it are being read (each frees its room when done) the
/// answer is a wait verdict, 503 with a Retry-After, and the page sends it again by itself.
/// Uploads kept after their job succeeded (`UPLOAD_RETENTION_HOURS`) are deleted early, oldest
/// first, to make room. Only when waiting cannot help (the file is larger than the store can
/// ever hold, or nothing is ahead to free room) is it refused, with a message for the operator.
async fn take_room(state: &AppState, incoming: u64) -> Result<Option<RoomHeld<'_>>, ApiError> {
    let headroom = state.cfg.services.min_headroom_bytes;
    let need = incoming.saturating_add(headroom);
    let reserved = &state.upload_reserved;
    let mut released_kept = 0;
    let (mem, free, arriving) = loop {
        let mem = {
            let mut conn = state.services.redis.get().await?;
            memory_info(&mut conn).await?
        };
        if mem.max == 0 {
            return Ok(None);
        }
        let arriving = reserved.fetch_add(incoming, Ordering::SeqCst);
        let free = mem.max.saturating_sub(mem.used).saturating_sub(arriving);
        if free >= need {
            if released_kept > 0 {
                tracing::info!(
                    uploads = released_kept,
                    "kept uploads deleted early to make room"
                );
            }
            return Ok(Some(RoomHeld {
                reserved,
                bytes: incoming,
            }));
        }
        reserved.fetch_sub(incoming, Ordering::SeqCst);
        // Files kept after their job (UPLOAD_RETENTION_HOURS) give way to one still to be read.
        match state.services.store.release_kept(4).await {
            Ok(n) if n > 0 && released_kept < 200 => released_kept += n,
            _ => break (mem, free, arriving),
        }
    };
    let mb = |b: u64| (b as f64 / 1_048_576.0 * 10.0).round() / 10.0;
    let counts = state
        .services
        .jobs
        .counts()
        .await
        .map_err(ApiError::storage)?;
    let ahead = counts.queued + counts.running;
    tracing::info!(
        free_mb = mb(free),
        need_mb = mb(need),
        ahead,
        "upload waits: no room in Redis yet"
    );
    if need > mem.max {
        return Err(ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            ErrorCode::StorageFull,
            format!(
                "this upload ({:.1} MB) is larger than the upload space can ever hold ({:.1} MB \
                 of Redis, {:.1} MB of it kept free); the operator can choose a larger Redis \
                 plan or an S3 upload store (UPLOAD_STORE)",
                mb(incoming),
                mb(mem.max),
                mb(headroom)
            ),
        ));
    }
    if ahead == 0 && arriving == 0 {
        return Err(ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            ErrorCode::StorageFull,
            format!(
                "the upload space is full ({:.1} MB free, this upload needs {:.1} MB) and no \
                 file is being read that would free it; the operator can choose a larger \
                 Redis plan or an S3 upload store (UPLOAD_STORE), or lower \
                 UPLOAD_RETENTION_HOURS",
                mb(free),
                mb(need)
            ),
        ));
    }
    let retry_after = typical_job_secs(state).await.clamp(2, 30);
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::WaitForRoom,
        format!(
            "waiting for room: {ahead} {} ahead {} being read; send it again in {retry_after} s",
            if ahead == 1 { "file" } else { "files" },
            if ahead == 1 { "is" } else { "are" },
        ),
    )
    .with_retry_after(retry_after)
    .with_details(serde_json::json!({
        "retry_after": retry_after,
        "ahead": ahead,
        "free_mb": mb(free),
        "need_mb": mb(need),
    })))
}

/// How long a file has recently taken to read, in seconds (10 when nothing is known): the
/// time after which room is likely to be freed.
async fn typical_job_secs(state: &AppState) -> u64 {
    let recent = state
        .services
        .jobs
        .list(Some(fom_core::jobs::JobState::Done), 10)
        .await
        .unwrap_or_default();
    let took: Vec<i64> = recent
        .iter()
        .filter_map(|j| Some(j.finished_at? - j.started_at?))
        .filter(|ms| *ms >= 0)
        .collect();
    if took.is_empty() {
        return 10;
    }
    let mean_ms = took.iter().sum::<i64>() / took.len() as i64;
    u64::try_from(mean_ms / 1000).unwrap_or(10).max(1)
}

/// Reads what is left of a part we do not keep, so the next part can be read; false when the
/// body broke.
async fn drain(mut field: Field) -> bool {
    while let Some(chunk) = field.next().await {
        if chunk.is_err() {
            return false;
        }
    }
    true
}

/// Takes one file into the deposit: into the store, then its own job (`Services::queue_files`),
/// except a photo, which waits in `photos` for the end of the request so the request's photos
/// are read together. `Break` when no later part should be read: the request body broke, or
/// storage failed.
async fn accept_file(
    state: &AppState,
    deposit_id: &str,
    name: &str,
    field: Field,
    photos: &mut Vec<Stored>,
) -> ControlFlow<Verdict, Verdict> {
    let mut reader = StreamReader::new(field.map_err(|e| std::io::Error::other(e.to_string())));
    let stored = state.services.store_file(name, &mut reader).await;
    let refused = match stored {
        Ok(f) => {
            let verdict = Verdict {
                name: name.to_string(),
                accepted: true,
                status: StatusCode::ACCEPTED.as_u16(),
                file_id: Some(f.file_id.clone()),
                job_id: None,
                kind: Some(f.kind.as_str()),
                size: Some(f.size),
                code: None,
                error: None,
            };
            if matches!(f.kind, FileKind::Jpeg | FileKind::Png) {
                photos.push(f);
                return ControlFlow::Continue(verdict);
            }
            match state
                .services
                .queue_files(deposit_id, std::slice::from_ref(&f))
                .await
            {
                Ok(job_id) => {
                    return ControlFlow::Continue(Verdict {
                        job_id: Some(job_id),
                        ..verdict
                    })
                }
                Err(e) => e,
            }
        }
        Err(e) => e,
    };
    let v = match refused {
        IntakeError::Unreadable(e) | IntakeError::Store(StoreError::Io(e)) if is_client_io(&e) => {
            tracing::warn!(error = %e, "upload interrupted");
            return ControlFlow::Break(interrupted(name));
        }
        IntakeError::Unreadable(e) => {
            tracing::warn!(error = %e, "upload interrupted while reading the file's start");
            return ControlFlow::Break(interrupted(name));
        }
        IntakeError::Type(e) => {
            let (status, code) = match e {
                SniffError::Empty => (StatusCode::BAD_REQUEST, ErrorCode::EmptyFile),
                _ => (
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    ErrorCode::UnsupportedType,
                ),
            };
            Verdict::rejected(name, status, code, e.to_string())
        }
        IntakeError::Store(StoreError::TooLarge { .. }) => Verdict::rejected(
            name,
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::FileTooLarge,
            format!(
                "the file is larger than {} MB; split it or scan at a lower resolution",
                state.cfg.services.max_file_bytes / (1024 * 1024)
            ),
        ),
        // Storage trouble: the files after this one would fare no better, so the rest of the
        // body is not read (the connection is closed after the answer).
        IntakeError::Store(e) => {
            let e = ApiError::storage(e);
            return ControlFlow::Break(Verdict::rejected(
                name,
                e.status_code(),
                ErrorCode::StorageUnavailable,
                e.message,
            ));
        }
        // Redis did not take the push within its wait: nothing of the file was kept, and the
        // next file would fare no better.
        IntakeError::NotQueued => {
            return ControlFlow::Break(Verdict::rejected(
                name,
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::StorageUnavailable,
                refused.to_string(),
            ));
        }
        IntakeError::NoDeposit(_) | IntakeError::NotRegistered => {
            return ControlFlow::Break(Verdict::rejected(
                name,
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::StorageUnavailable,
                "the file could not be registered; try again".into(),
            ));
        }
    };
    // Refused before the end of the part: read the rest so the next part can be read.
    if drain_reader(&mut reader).await {
        ControlFlow::Continue(v)
    } else {
        ControlFlow::Break(v)
    }
}

/// One job for the photos of this request, its id on each photo's verdict; when it cannot be
/// queued, nothing of them is kept and each verdict says so.
async fn queue_photos(
    state: &AppState,
    deposit_id: &str,
    photos: &[Stored],
    verdicts: &mut [Verdict],
) {
    let queued = state.services.queue_files(deposit_id, photos).await;
    for v in verdicts.iter_mut() {
        if !photos
            .iter()
            .any(|p| Some(&p.file_id) == v.file_id.as_ref())
        {
            continue;
        }
        match &queued {
            Ok(job_id) => v.job_id = Some(job_id.clone()),
            Err(e) => {
                let message = match e {
                    IntakeError::NotQueued => e.to_string(),
                    _ => "the file could not be registered; try again".to_string(),
                };
                *v = Verdict::rejected(
                    &v.name,
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::StorageUnavailable,
                    message,
                );
            }
        }
    }
}

fn malformed() -> Verdict {
    Verdict::rejected(
        "",
        StatusCode::BAD_REQUEST,
        ErrorCode::UploadInterrupted,
        "the upload was interrupted or malformed; send the file again".into(),
    )
}

fn interrupted(name: &str) -> Verdict {
    Verdict::rejected(
        name,
        StatusCode::BAD_REQUEST,
        ErrorCode::UploadInterrupted,
        "the upload was interrupted; nothing of this file was kept, send it again".into(),
    )
}

/// Errors of the request body (ours to report as an interrupted upload), as opposed to the
/// store's own I/O (disk full, S3 down).
fn is_client_io(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::Other || e.kind() == std::io::ErrorKind::UnexpectedEof
}

/// Reads and discards the rest of a part; false when the body broke.
async fn drain_reader<R: tokio::io::AsyncRead + Unpin>(reader: &mut R) -> bool {
    tokio::io::copy(reader, &mut tokio::io::sink())
        .await
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_paths_and_controls() {
        assert_eq!(sanitize_name("../../etc/passwd", 1), "passwd");
        assert_eq!(sanitize_name("C:\\Users\\x\\scan 1.pdf", 1), "scan 1.pdf");
        assert_eq!(sanitize_name("..", 3), "upload-3");
        assert_eq!(sanitize_name("a\u{0}b\nc.csv", 1), "abc.csv");
        assert_eq!(sanitize_name(".hidden.pdf", 1), "hidden.pdf");
        assert_eq!(sanitize_name(&"x".repeat(500), 1).len(), 200);
        // Shown as "checkexe.jpg" with the override; kept as what it is.
        assert_eq!(sanitize_name("check\u{202E}gpj.exe", 1), "checkgpj.exe");
        assert_eq!(
            sanitize_name("\u{2066}scan\u{2069}\u{200F}.pdf", 1),
            "scan.pdf"
        );
        assert_eq!(sanitize_name(". .x", 1), "x");
        assert_eq!(
            sanitize_name(&format!("{} b", "a".repeat(199)), 1),
            "a".repeat(199)
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Whatever a browser or a script sends as a file name, what is kept is one short,
        /// visible, non-hidden name, and cleaning it again changes nothing.
        #[test]
        fn any_name_cleans_to_one_short_visible_name(
            raw in proptest::prop_oneof![
                proptest::prelude::any::<String>(),
                "[ ./\\\\a-z\u{202E}\u{2066}\t\n\u{0}]{0,300}",
            ],
            n in 1usize..1000,
        ) {
            let name = sanitize_name(&raw, n);
            proptest::prop_assert!(!name.is_empty());
            proptest::prop_assert!(name.chars().count() <= 200);
            proptest::prop_assert!(!name.contains(['/', '\\']));
            proptest::prop_assert!(!name.chars().any(|c| c.is_control() || is_bidi_control(c)));
            proptest::prop_assert!(!name.starts_with('.'));
            proptest::prop_assert_eq!(name.trim(), name.as_str());
            proptest::prop_assert_eq!(sanitize_name(&name, n), name);
        }
    }
}
