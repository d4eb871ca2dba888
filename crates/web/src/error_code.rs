//! The `code` of every JSON error and rejected upload verdict: the page decides what to show
//! from it, so the serialised names are part of the API and pinned by the tests below.

use serde::Serialize;

/// A machine-readable error code; serialises to its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 404: the deposit, record, job, file or QuickBooks object asked for is gone or never was,
    /// its id in the path is malformed, or nothing answers at the address.
    NotFound,
    /// 503 (or a rejected file): Redis or the upload store failed; the answer carries Retry-After.
    StorageUnavailable,
    /// 409 while another update holds the deposit; 503 when memory is too short for an upload.
    Busy,
    /// 403: a state-changing request came from another site, or carried neither Origin nor Referer.
    CrossSite,
    /// 503: a handler ran past the request time limit.
    Timeout,
    /// 500: the application state is missing from a request (a wiring bug).
    Internal,
    /// 401: an API route was called without a valid session.
    SignInRequired,
    /// 400: a body or query could not be read (malformed JSON, a form or query with bad
    /// fields), or a record edit's body is not a JSON object of fields.
    BadBody,
    /// 415: a body came with a content type the route does not take (JSON routes want
    /// `application/json`, sign-in a form).
    UnsupportedMediaType,
    /// 413: a JSON or form body is over the route's size limit.
    BodyTooLarge,
    /// 429 with Retry-After: this session, or the server, has as many event streams open as
    /// allowed (`EVENTS_MAX_PER_SESSION`, `EVENTS_MAX`).
    TooManyStreams,
    /// 422: fields failed validation or are over their length limit (record edits, a new
    /// deposit's name, QuickBooks names); the message lists the problems and `details` holds
    /// `[{field, message}]`.
    InvalidFields,
    /// 400: the jobs list's state filter is unknown, or the QuickBooks OAuth state did not match.
    BadState,
    /// 409: a retry was asked for a file or job that has not failed.
    NotRetryable,
    /// 500: the deposit's CSV could not be built.
    ReportFailed,
    /// 413 (or the verdict that ends the list): the upload's size, declared or counted as it
    /// streams, is over the per-upload limit.
    UploadTooLarge,
    /// 413 verdict that ends the list: the upload holds more parts than allowed; the rest was
    /// not read.
    TooManyParts,
    /// 408 verdict that ends the list: the body arrived slower than the floor rate.
    UploadTooSlow,
    /// 400 verdict: the multipart stream broke or was malformed mid-file.
    UploadInterrupted,
    /// 413 verdict: a file beyond the per-upload file count.
    TooManyFiles,
    /// 400: the upload held no parts named `files`.
    NoFiles,
    /// 507: the upload space can never hold this upload (a message for the operator).
    StorageFull,
    /// 503 with Retry-After: no room for this upload until files ahead of it are read; send
    /// it again after the wait.
    WaitForRoom,
    /// 400 verdict: an uploaded file is empty.
    EmptyFile,
    /// 415 verdict: an uploaded file is not a type the intake reads.
    UnsupportedType,
    /// 413 verdict: one uploaded file is over the per-file size limit.
    FileTooLarge,
    /// 503: QuickBooks credentials are not configured on this server.
    QboNotConfigured,
    /// 409: no QuickBooks company is connected.
    QboNotConnected,
    /// 409: the QuickBooks connection's tokens no longer work; connect again.
    QboReconnectNeeded,
    /// 400: the QuickBooks consent was declined.
    QboDenied,
    /// 502: QuickBooks could not be reached or answered with trouble; Retry-After 30.
    QboUnavailable,
    /// 503: QuickBooks asks us to slow down; Retry-After says when the page asks again.
    QboBusy,
    /// 422: QuickBooks refused the data or query as invalid.
    QboInvalid,
    /// 409: a QuickBooks customer, vendor or employee has the name; the page offers another.
    QboDuplicateName,
    /// 422: QuickBooks needs a reference chosen; `details.choose` says which.
    QboChooseReference,
    /// 409: the QuickBooks object changed since it was read; read it again.
    QboConflict,
}

impl ErrorCode {
    /// The serialised name, for logs and `Display`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::StorageUnavailable => "storage_unavailable",
            Self::Busy => "busy",
            Self::CrossSite => "cross_site",
            Self::Timeout => "timeout",
            Self::Internal => "internal",
            Self::SignInRequired => "sign_in_required",
            Self::BadBody => "bad_body",
            Self::InvalidFields => "invalid_fields",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::BodyTooLarge => "body_too_large",
            Self::TooManyStreams => "too_many_streams",
            Self::BadState => "bad_state",
            Self::NotRetryable => "not_retryable",
            Self::ReportFailed => "report_failed",
            Self::UploadTooLarge => "upload_too_large",
            Self::TooManyParts => "too_many_parts",
            Self::UploadTooSlow => "upload_too_slow",
            Self::UploadInterrupted => "upload_interrupted",
            Self::TooManyFiles => "too_many_files",
            Self::NoFiles => "no_files",
            Self::StorageFull => "storage_full",
            Self::WaitForRoom => "wait_for_room",
            Self::EmptyFile => "empty_file",
            Self::UnsupportedType => "unsupported_type",
            Self::FileTooLarge => "file_too_large",
            Self::QboNotConfigured => "qbo_not_configured",
            Self::QboNotConnected => "qbo_not_connected",
            Self::QboReconnectNeeded => "qbo_reconnect_needed",
            Self::QboDenied => "qbo_denied",
            Self::QboUnavailable => "qbo_unavailable",
            Self::QboBusy => "qbo_busy",
            Self::QboInvalid => "qbo_invalid",
            Self::QboDuplicateName => "qbo_duplicate_name",
            Self::QboChooseReference => "qbo_choose_reference",
            Self::QboConflict => "qbo_conflict",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    /// Builds the pinned table and an exhaustive match from one list, so a new variant does
    /// not compile until its wire name is pinned here.
    macro_rules! pinned {
        ($($variant:ident => $name:literal,)*) => {
            const PINNED: &[(ErrorCode, &str)] = &[$((ErrorCode::$variant, $name),)*];
            #[allow(dead_code)]
            fn every_variant_is_pinned(c: ErrorCode) {
                match c {
                    $(ErrorCode::$variant => {})*
                }
            }
        };
    }

    pinned! {
        NotFound => "not_found",
        StorageUnavailable => "storage_unavailable",
        Busy => "busy",
        CrossSite => "cross_site",
        Timeout => "timeout",
        Internal => "internal",
        SignInRequired => "sign_in_required",
        BadBody => "bad_body",
        InvalidFields => "invalid_fields",
        UnsupportedMediaType => "unsupported_media_type",
        BodyTooLarge => "body_too_large",
        TooManyStreams => "too_many_streams",
        BadState => "bad_state",
        NotRetryable => "not_retryable",
        ReportFailed => "report_failed",
        UploadTooLarge => "upload_too_large",
        TooManyParts => "too_many_parts",
        UploadTooSlow => "upload_too_slow",
        UploadInterrupted => "upload_interrupted",
        TooManyFiles => "too_many_files",
        NoFiles => "no_files",
        StorageFull => "storage_full",
        WaitForRoom => "wait_for_room",
        EmptyFile => "empty_file",
        UnsupportedType => "unsupported_type",
        FileTooLarge => "file_too_large",
        QboNotConfigured => "qbo_not_configured",
        QboNotConnected => "qbo_not_connected",
        QboReconnectNeeded => "qbo_reconnect_needed",
        QboDenied => "qbo_denied",
        QboUnavailable => "qbo_unavailable",
        QboBusy => "qbo_busy",
        QboInvalid => "qbo_invalid",
        QboDuplicateName => "qbo_duplicate_name",
        QboChooseReference => "qbo_choose_reference",
        QboConflict => "qbo_conflict",
    }

    /// The page's scripts as served (embedded at build time), so a rename on either side fails
    /// the test; `pages` answers only these, and web.rs checks they are every file in assets/js.
    fn scripts() -> impl Iterator<Item = (&'static str, &'static str)> {
        std::iter::once(("app.js", crate::pages::JS)).chain(crate::pages::MODULES.iter().copied())
    }

    #[test]
    fn every_variant_serialises_to_its_pinned_name() {
        for &(code, name) in PINNED {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{name}\""), "{code:?}");
            assert_eq!(code.as_str(), name, "{code:?}");
            assert_eq!(code.to_string(), name, "{code:?}");
        }
        let mut names: Vec<&str> = PINNED.iter().map(|&(_, n)| n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PINNED.len(), "two variants share a name");
    }

    /// String literals a script compares an error code with: `….code === '…'` (or `==`, `!==`,
    /// `!=`, literal on either side) and the `case '…':` labels of a `switch (….code)`.
    fn compared_codes(js: &str) -> Vec<String> {
        const OP: char = '\u{0}';
        let is_break = |c: char| c.is_whitespace() || "(){};,&|?:".contains(c);
        let literal = |token: &str| -> Option<String> {
            let q = token
                .chars()
                .next()
                .filter(|c| matches!(c, '\'' | '"' | '`'))?;
            let inner = token[1..].strip_suffix(q)?;
            Some(inner.to_string())
        };
        let mut out = Vec::new();
        // Longest operators first, so `===` is not read as `==` followed by `=`.
        let marked = ["!==", "===", "!=", "=="]
            .iter()
            .fold(js.to_string(), |s, op| s.replace(op, &OP.to_string()));
        let sides: Vec<&str> = marked.split(OP).collect();
        for pair in sides.windows(2) {
            let left = pair[0].rsplit(is_break).find(|t| !t.is_empty());
            let right = pair[1].split(is_break).find(|t| !t.is_empty());
            let (Some(left), Some(right)) = (left, right) else {
                continue;
            };
            if left.ends_with(".code") {
                out.extend(literal(right));
            } else if right.ends_with(".code") {
                out.extend(literal(left));
            }
        }
        for (at, _) in js.match_indices("switch") {
            let rest = &js[at..];
            let Some(open) = rest.find('{') else { continue };
            if !rest[..open].contains(".code") {
                continue;
            }
            let mut depth = 0usize;
            let mut end = rest.len();
            for (i, ch) in rest[open..].char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            end = open + i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            for part in rest[open..end].split("case ").skip(1) {
                out.extend(
                    part.split(is_break)
                        .find(|t| !t.is_empty())
                        .and_then(literal),
                );
            }
        }
        out
    }

    #[test]
    fn every_code_the_page_checks_is_a_variant() {
        let known: Vec<&str> = PINNED.iter().map(|&(_, n)| n).collect();
        let mut checked = Vec::new();
        for (file, js) in scripts() {
            for code in compared_codes(js) {
                assert!(
                    known.contains(&code.as_str()),
                    "{file} checks for error code {code:?}, which the server never sends"
                );
                checked.push(code);
            }
        }
        // The page handles a duplicate customer name specially; finding it proves the scan works.
        assert!(
            checked.iter().any(|c| c == "qbo_duplicate_name"),
            "{checked:?}"
        );
    }

    #[test]
    fn the_scan_finds_each_comparison_form() {
        let js = "if (e.code === 'a') {} if ('b' == err.code) {} if (x.code !== \"c\") {}\n\
                  switch (e.code) { case 'd': break; case `e`: { f(); } }\n\
                  if (res.outcome === 'sent') {}";
        assert_eq!(compared_codes(js), ["a", "b", "c", "d", "e"]);
    }
}
