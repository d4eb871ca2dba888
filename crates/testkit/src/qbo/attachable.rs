//! Attachable rules and the upload endpoint. `POST /upload` takes a multipart body whose
//! parts pair up by suffix (`file_metadata_01`, the Attachable as JSON, with
//! `file_content_01`, the file; then `_02`, ...). Each pair becomes an Attachable, its bytes
//! kept apart from the JSON, or a per-file Fault: the answer's `AttachableResponse` has one
//! of either per pair, in order, with HTTP 200 even when every file was refused. The framing
//! is parsed here from the buffered body, as bytes: files are binary.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::company::Company;
use super::entity::{id_of, str_of, trim_field, Kind};
use super::fault::Fault;
use super::http::plain;
use super::state::{api_time, Shared};

/// QuickBooks's limit on one attachment.
const MAX_FILE_BYTES: usize = 100 * 1024 * 1024;

/// The file types QuickBooks takes as attachments (AI, CSV, DOC, DOCX, EPS, GIF, JPEG, ODS,
/// PDF, PNG, RTF, TIFF, TXT, XLS, XLSX, XML).
const ACCEPTED_TYPES: [&str; 16] = [
    "application/postscript",
    "text/csv",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "image/gif",
    "image/jpeg",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/pdf",
    "image/png",
    "application/rtf",
    "image/tiff",
    "text/plain",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/xml",
    "text/xml",
];

/// One part of a multipart body.
struct Part<'a> {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
    data: &'a [u8],
}

impl Company {
    /// `POST /upload`: the `AttachableResponse` answer, or a fault for the whole request when
    /// the body is not a well-formed multipart body of complete pairs.
    pub(super) fn upload(
        &mut self,
        body: &[u8],
        content_type: &str,
        now: DateTime<Utc>,
    ) -> Result<Value, Fault> {
        let boundary = boundary(content_type).ok_or_else(|| {
            Fault::validation(
                "2020",
                "Required Param Missing",
                format!(
                    "An upload must be multipart/form-data with a boundary; the request's \
                     Content-Type is \"{content_type}\""
                ),
            )
            .element("Content-Type")
        })?;
        let parts = parse_multipart(body, &boundary).map_err(|e| {
            Fault::invalid_property(format!("Unable to parse the multipart body: {e}"))
        })?;
        let mut answers = Vec::new();
        for (meta, content) in pair_up(&parts)? {
            answers.push(match self.upload_one(meta, content, now) {
                Ok(attachable) => json!({ "Attachable": attachable }),
                Err(fault) => json!({ "Fault": fault.value() }),
            });
        }
        Ok(json!({"AttachableResponse": answers, "time": api_time(now)}))
    }

    /// One file: its metadata completed from the content part (file name, type), the size
    /// limit, the Attachable rules; then stored with its bytes, size and download link.
    fn upload_one(
        &mut self,
        meta: &Part<'_>,
        content: &Part<'_>,
        now: DateTime<Utc>,
    ) -> Result<Value, Fault> {
        let mut obj = match serde_json::from_slice::<Value>(meta.data) {
            Ok(Value::Object(obj)) => obj,
            Ok(_) => {
                return Err(Fault::invalid_property(format!(
                    "{} must be a JSON object",
                    meta.name
                )))
            }
            Err(e) => {
                return Err(Fault::invalid_property(format!(
                    "Unable to parse {}: {e}",
                    meta.name
                )))
            }
        };
        for (key, fallback) in [
            ("FileName", &content.filename),
            ("ContentType", &content.content_type),
        ] {
            trim_field(&mut obj, key);
            if str_of(&obj, key).is_none() {
                let value = fallback
                    .as_deref()
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| Fault::required(key))?;
                obj.insert(key.into(), json!(value));
            }
        }
        let size = content.data.len();
        if size > MAX_FILE_BYTES {
            return Err(Fault::business(format!(
                "{} has {size} bytes; an attachment may have at most 100 MB \
                 ({MAX_FILE_BYTES} bytes)",
                str_of(&obj, "FileName").unwrap_or("The file")
            ))
            .element(&content.name));
        }
        let created = self.create(Kind::Attachable, obj, now, true)?;
        let id = created
            .get("Id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        self.attachment_bytes
            .insert(id.clone(), content.data.to_vec());
        let uri = format!("{}/attachments/{id}", self.base);
        let key: u64 = id.parse().unwrap_or_default();
        match self.table_mut(Kind::Attachable).get_mut(&key) {
            Some(Value::Object(stored)) => {
                stored.insert("Size".into(), json!(size));
                stored.insert("TempDownloadUri".into(), json!(uri));
                Ok(Value::Object(stored.clone()))
            }
            _ => Ok(created),
        }
    }

    /// A note or a file name; an accepted content type; links to entities that exist.
    pub(super) fn prepare_attachable(
        &self,
        obj: &mut Map<String, Value>,
        self_id: Option<&str>,
    ) -> Result<(), Fault> {
        if self_id.is_none() {
            // Only an upload knows a file's size and where to fetch it.
            obj.remove("Size");
            obj.remove("TempDownloadUri");
        }
        trim_field(obj, "FileName");
        trim_field(obj, "Note");
        if str_of(obj, "FileName").is_none() && str_of(obj, "Note").is_none() {
            return Err(Fault::required("Note"));
        }
        if let Some(sent) = str_of(obj, "ContentType") {
            let media = media_type(sent);
            if !ACCEPTED_TYPES.contains(&media.as_str()) {
                return Err(Fault::business(format!(
                    "Unsupported ContentType {sent}: QuickBooks attaches {} files only",
                    ACCEPTED_TYPES.join(", ")
                ))
                .element("ContentType"));
            }
            obj.insert("ContentType".into(), json!(media));
        }
        let refs = match obj.get("AttachableRef") {
            None | Some(Value::Null) => return Ok(()),
            Some(Value::Array(refs)) => refs.clone(),
            Some(_) => {
                return Err(Fault::invalid_property("AttachableRef must be an array")
                    .element("AttachableRef"))
            }
        };
        let mut out = Vec::new();
        for link in refs {
            let Value::Object(mut link) = link else {
                return Err(Fault::invalid_property(
                    "Each AttachableRef must be an object",
                ));
            };
            let Some(Value::Object(mut entity)) = link.get("EntityRef").cloned() else {
                return Err(Fault::required("AttachableRef.EntityRef"));
            };
            let entity_type = str_of(&entity, "type")
                .ok_or_else(|| Fault::required("AttachableRef.EntityRef.type"))?
                .to_string();
            let value = entity
                .get("value")
                .and_then(id_of)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| Fault::required("AttachableRef.EntityRef.value"))?;
            let kind = Kind::from_name_any_case(&entity_type)
                .filter(|k| *k != Kind::Attachable)
                .ok_or_else(|| {
                    Fault::invalid_ref(
                        "AttachableRef.EntityRef",
                        format!(
                            "Invalid Reference Id : the fake cannot attach files to a \
                             {entity_type}"
                        ),
                    )
                })?;
            if self.get(kind, &value).is_none() {
                return Err(Fault::invalid_ref(
                    "AttachableRef.EntityRef",
                    format!(
                        "Invalid Reference Id : {} id {value} not found",
                        kind.name()
                    ),
                ));
            }
            entity.insert("value".into(), json!(value));
            link.insert("EntityRef".into(), Value::Object(entity));
            link.entry("IncludeOnSend").or_insert(json!(false));
            out.push(Value::Object(link));
        }
        obj.insert("AttachableRef".into(), Value::Array(out));
        Ok(())
    }
}

/// `GET /attachments/{id}`: the bytes behind a `TempDownloadUri`. Like the signed link
/// QuickBooks hands out, it needs no bearer token.
pub(super) async fn download(id: web::Path<String>, shared: web::Data<Shared>) -> HttpResponse {
    let id = id.into_inner();
    let g = shared.lock();
    let Some(bytes) = g.company.attachment_bytes.get(&id) else {
        return plain(StatusCode::NOT_FOUND, format!("no attachment {id}"));
    };
    let content_type = g
        .company
        .get(Kind::Attachable, &id)
        .and_then(|a| a.get("ContentType"))
        .and_then(Value::as_str)
        .unwrap_or("application/octet-stream")
        .to_string();
    HttpResponse::Ok()
        .content_type(content_type)
        .body(bytes.clone())
}

/// `image/JPEG; name=x` → `image/jpeg`.
fn media_type(content_type: &str) -> String {
    header_params(content_type).0.to_ascii_lowercase()
}

/// The boundary of a `multipart/...` Content-Type; `None` for any other type.
fn boundary(content_type: &str) -> Option<String> {
    let (media, params) = header_params(content_type);
    if !media.to_ascii_lowercase().starts_with("multipart/") {
        return None;
    }
    params
        .into_iter()
        .find(|(k, _)| k == "boundary")
        .map(|(_, v)| v)
        .filter(|b| !b.is_empty() && b.len() <= 70)
}

/// `value; key=token; key="quoted; \"string\""` → the value and its parameters (keys in
/// lower case, values unquoted).
fn header_params(header: &str) -> (String, Vec<(String, String)>) {
    let mut segments = vec![String::new()];
    let (mut quoted, mut escaped) = (false, false);
    for c in header.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                segments.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(segment) = segments.last_mut() {
            segment.push(c);
        }
    }
    let mut segments = segments.into_iter();
    let value = segments.next().unwrap_or_default().trim().to_string();
    let params = segments
        .filter_map(|segment| {
            let (k, v) = segment.split_once('=')?;
            Some((k.trim().to_ascii_lowercase(), unquote(v.trim())))
        })
        .collect();
    (value, params)
}

fn unquote(v: &str) -> String {
    let Some(inner) = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return v.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut escaped = false;
    for c in inner.chars() {
        if c == '\\' && !escaped {
            escaped = true;
        } else {
            out.push(c);
            escaped = false;
        }
    }
    out
}

/// RFC 5987 `filename*=utf-8''scan%20one.jpg` → `scan one.jpg` (how reqwest and browsers
/// send names that are not plain ASCII tokens).
fn extended_value(v: &str) -> Option<String> {
    let mut fields = v.splitn(3, '\'');
    let charset = fields.next()?;
    let _language = fields.next()?;
    let encoded = fields.next()?.as_bytes();
    let mut out = Vec::with_capacity(encoded.len());
    let mut i = 0;
    while let Some(&b) = encoded.get(i) {
        let hex = encoded
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    if charset.eq_ignore_ascii_case("utf-8") {
        Some(String::from_utf8_lossy(&out).into_owned())
    } else {
        // ISO-8859-1: each byte is the code point.
        Some(out.into_iter().map(char::from).collect())
    }
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let first = *needle.first()?;
    let mut at = from;
    loop {
        let rest = haystack.get(at..)?;
        let hit = at + rest.iter().position(|&b| b == first)?;
        if haystack.get(hit..hit + needle.len()) == Some(needle) {
            return Some(hit);
        }
        at = hit + 1;
    }
}

/// Splits a multipart body (RFC 2046): an optional preamble, then parts each opened by a
/// `--boundary` line and their headers up to a blank line; the body ends at
/// `--boundary--`. Every line break of the framing is CRLF; part content is taken as bytes.
fn parse_multipart<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, String> {
    let opening = format!("--{boundary}").into_bytes();
    let delimiter = format!("\r\n--{boundary}").into_bytes();
    let mut at = if body.starts_with(&opening) {
        opening.len()
    } else {
        find(body, &delimiter, 0)
            .ok_or_else(|| format!("the boundary \"{boundary}\" does not occur in the body"))?
            + delimiter.len()
    };
    let mut parts = Vec::new();
    loop {
        let rest = body.get(at..).unwrap_or_default();
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        // Transport padding may follow a boundary before its CRLF.
        let padding = rest
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        if !rest.get(padding..).unwrap_or_default().starts_with(b"\r\n") {
            return Err(if rest.is_empty() {
                "the body ends without the closing boundary".into()
            } else {
                "a boundary line does not end with CRLF".into()
            });
        }
        let head_start = at + padding + 2;
        let (head_end, data_start) = if body
            .get(head_start..)
            .unwrap_or_default()
            .starts_with(b"\r\n")
        {
            (head_start, head_start + 2)
        } else {
            let end = find(body, b"\r\n\r\n", head_start)
                .ok_or("a part's headers do not end with a blank line")?;
            (end, end + 4)
        };
        let data_end = find(body, &delimiter, data_start)
            .ok_or("the body ends without the closing boundary")?;
        let head = String::from_utf8_lossy(body.get(head_start..head_end).unwrap_or_default());
        let data = body.get(data_start..data_end).unwrap_or_default();
        parts.push(part(&head, data)?);
        at = data_end + delimiter.len();
    }
}

/// A part from its header block: Content-Disposition `form-data` with a `name` (and maybe a
/// `filename`), and maybe a Content-Type.
fn part<'a>(head: &str, data: &'a [u8]) -> Result<Part<'a>, String> {
    let mut disposition = None;
    let mut content_type = None;
    for line in head.split("\r\n") {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("a part has a malformed header line \"{line}\""));
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "content-disposition" => disposition = Some(header_params(value)),
            "content-type" => content_type = Some(value.trim().to_string()),
            _ => {}
        }
    }
    let (_, params) = disposition.ok_or("a part has no Content-Disposition header")?;
    let param = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let name = param("name").ok_or("a part's Content-Disposition has no name")?;
    let filename = param("filename*")
        .and_then(|v| extended_value(&v))
        .or_else(|| param("filename"));
    Ok(Part {
        name,
        filename,
        content_type,
        data,
    })
}

/// The `file_metadata_NN` and `file_content_NN` parts paired by suffix, in the order each
/// pair first appears; other parts are ignored. A half without the other is refused.
fn pair_up<'p, 'a>(parts: &'p [Part<'a>]) -> Result<Vec<(&'p Part<'a>, &'p Part<'a>)>, Fault> {
    type Slot<'p, 'a> = (String, Option<&'p Part<'a>>, Option<&'p Part<'a>>);
    let mut slots: Vec<Slot<'p, 'a>> = Vec::new();
    for part in parts {
        let (suffix, is_meta) = if let Some(s) = part.name.strip_prefix("file_metadata_") {
            (s, true)
        } else if let Some(s) = part.name.strip_prefix("file_content_") {
            (s, false)
        } else {
            continue;
        };
        let index = match slots.iter().position(|(s, _, _)| s == suffix) {
            Some(index) => index,
            None => {
                slots.push((suffix.to_string(), None, None));
                slots.len() - 1
            }
        };
        let Some((_, meta, content)) = slots.get_mut(index) else {
            continue;
        };
        let half = if is_meta { meta } else { content };
        if half.is_some() {
            return Err(Fault::invalid_property(format!(
                "The part {} occurs more than once",
                part.name
            ))
            .element(&part.name));
        }
        *half = Some(part);
    }
    if slots.is_empty() {
        return Err(Fault::required("file_content_01"));
    }
    slots
        .into_iter()
        .map(|(suffix, meta, content)| match (meta, content) {
            (Some(meta), Some(content)) => Ok((meta, content)),
            (Some(_), None) => Err(Fault::required(&format!("file_content_{suffix}"))),
            (None, _) => Err(Fault::required(&format!("file_metadata_{suffix}"))),
        })
        .collect()
}
