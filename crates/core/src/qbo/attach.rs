//! The scan behind a receipt, attached to it in QuickBooks (`ATTACH_SOURCES=1`): an
//! Attachable uploaded and linked to the SalesReceipt in one request. Exactly once like a
//! receipt: a `requestid` that is the same on every try, our marker in the attachment's note,
//! and a look-up before every try (one query for a whole deposit's receipts at the start of a
//! run, one for the receipt before each retry).

use std::collections::HashMap;

use serde_json::json;
use uuid::Uuid;

use crate::qbo::client::{request_id, Upload};
use crate::qbo::entities::Attachable;
use crate::qbo::query::Query;
use crate::qbo::receipts::{marker, retryable};
use crate::qbo::sync::Qbo;
use crate::qbo::QboError;

/// Receipts named in one `AttachableRef.EntityRef.value IN (...)` query.
const IDS_PER_QUERY: usize = 100;

/// A file for one receipt: what the job read (a page image or a photo) and how to call it.
#[derive(Debug, Clone)]
pub struct SourceImage {
    pub file_name: String,
    pub content_type: String,
    pub bytes: bytes::Bytes,
    /// "page 3 of scan.pdf", "photo check-1.jpg": said in the attachment's note.
    pub what: String,
}

/// The Attachable that links `image` to the receipt of row `record_id`.
pub fn upload_for(receipt_id: &str, record_id: &Uuid, image: SourceImage) -> Upload {
    let note = format!(
        "Scan of the gift: {} (fom-qbo) {}",
        image.what.chars().take(300).collect::<String>(),
        marker(record_id)
    );
    Upload {
        metadata: json!({
            "AttachableRef": [{"EntityRef": {"type": "SalesReceipt", "value": receipt_id},
                               "IncludeOnSend": false}],
            "FileName": image.file_name,
            "ContentType": image.content_type,
            "Note": note,
        }),
        file_name: image.file_name,
        content_type: image.content_type,
        content: image.bytes,
    }
}

impl Qbo {
    /// The attachments our rows already made, by row: one query per 100 receipts. `rows` are
    /// (receipt id, row id).
    pub async fn attached_already(
        &self,
        rows: &[(String, Uuid)],
    ) -> Result<HashMap<Uuid, String>, QboError> {
        let mut found = HashMap::new();
        for chunk in rows.chunks(IDS_PER_QUERY) {
            let ids: Vec<&str> = chunk.iter().map(|(r, _)| r.as_str()).collect();
            let q = Query::select("Attachable")
                .eq("AttachableRef.EntityRef.Type", "SalesReceipt")?
                .is_in("AttachableRef.EntityRef.value", &ids)?;
            let list: Vec<Attachable> = self.client.query_all(&q).await?;
            for (_, row) in chunk {
                let mark = marker(row);
                if let Some(a) = list
                    .iter()
                    .find(|a| a.note.as_deref().is_some_and(|n| n.contains(&mark)))
                {
                    found.insert(*row, a.id.clone().unwrap_or_default());
                }
            }
        }
        Ok(found)
    }

    /// Attaches `upload` to the receipt of row `record_id`, exactly once; the Attachable's id
    /// and whether an earlier try had made it.
    pub async fn attach_source(
        &self,
        receipt_id: &str,
        record_id: &Uuid,
        upload: &Upload,
    ) -> Result<(String, bool), QboError> {
        let rid = request_id("attach", &record_id.to_string(), &upload.metadata);
        let max = self.client.connection().settings().max_attempts;
        let mut tries = 0;
        loop {
            tries += 1;
            // Before every retry: the try whose answer was lost may have made it.
            if tries > 1 {
                let rows = [(receipt_id.to_string(), *record_id)];
                if let Some(id) = self.attached_already(&rows).await?.remove(record_id) {
                    return Ok((id, true));
                }
            }
            match self.client.upload_once(upload, &rid).await {
                Ok(a) => return Ok((a.id.unwrap_or_default(), false)),
                Err(e) if retryable(&e) && tries < max => {
                    tracing::warn!(%record_id, tries, "qbo: attachment not confirmed; checking before retrying");
                    tokio::time::sleep(self.client.backoff(tries)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Audits an attachment made (or found) for a row's receipt.
    pub async fn audit_attached(
        &self,
        deposit_id: &str,
        record_id: &Uuid,
        receipt_id: &str,
        attachable_id: &str,
    ) {
        self.audit(
            crate::audit::AuditKind::SourceAttached,
            &crate::audit::Actor::default(),
            json!({"deposit_id": deposit_id, "record_id": record_id.to_string(),
                   "receipt_id": receipt_id, "attachable_id": attachable_id}),
        )
        .await;
    }

    /// Stores on the row what attaching its scan came to.
    pub async fn note_attachment(
        &self,
        deposit_id: &str,
        record_id: &Uuid,
        outcome: Result<String, String>,
    ) -> Result<(), QboError> {
        self.change_record(deposit_id, record_id, |r| match &outcome {
            Ok(id) => {
                r.qbo.attachment_id = Some(id.clone());
                r.qbo.attachment_error = None;
            }
            Err(why) => r.qbo.attachment_error = Some(why.clone()),
        })
        .await
        .map(|_| ())
    }
}
