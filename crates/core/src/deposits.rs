//! Deposits: what the treasurer uploads files into and reviews. A deposit holds its files
//! (each with one job), its records (merged across files and later uploads) and the errors of
//! pages that yielded no records.
//!
//! A deposit is one JSON document in a Redis hash, changed only by compare-and-set on a
//! revision number (one Lua script), so a worker merging a finished job and the treasurer
//! editing a row never overwrite each other: the loser re-reads and applies its change again.
//! This works over the worker's shared multiplexed connection, where WATCH would not.

use std::ops::ControlFlow;
use std::time::Duration;

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::dedup::{merge_into, MergeSummary};
use crate::donation::{parse_amount, parse_date, Donation};
use crate::extract::ExtractError;
use crate::keys::Keys;
use crate::normalize::{self, Rules};
use crate::redis_conn::RedisPool;

/// Default time a deposit is kept after its last change.
pub const DEPOSIT_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deposit {
    pub id: String,
    pub name: String,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    pub updated_at: i64,
    pub files: Vec<DepositFile>,
    pub records: Vec<Donation>,
    /// Pages or files that yielded no records, and why.
    pub errors: Vec<ExtractError>,
    /// Jobs whose results are already in `records` (a re-delivered job merges once).
    #[serde(default)]
    pub merged_jobs: Vec<String>,
    /// Totals its lists, slips and reports state, to compare with its rows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stated_totals: Vec<crate::extract::StatedTotal>,
    /// The QuickBooks Deposit that moves its receipts into the bank: asked for, then made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_deposit: Option<crate::qbo::bank::BankDeposit>,
}

/// A difference between what the deposit's papers state and what its rows add up to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DepositWarning {
    pub code: &'static str,
    pub message: String,
}

impl Deposit {
    /// The totals and counts its papers state, compared with its rows: a deposit list's or
    /// slip's with the check rows (online gifts are not on them), a printed report's with the
    /// rows read from it. "the deposit list says $1,240.00; the rows add up to $1,265.00".
    pub fn warnings(&self) -> Vec<DepositWarning> {
        use crate::donation::PaymentMethod;
        use crate::extract::StatedTotal;
        let mut out = Vec::new();
        let checks =
            |_: &StatedTotal, r: &Donation| r.payment_method != Some(PaymentMethod::Online);
        let from_file = |t: &StatedTotal, r: &Donation| r.sources().any(|s| s.file == t.file);
        type Covers = fn(&StatedTotal, &Donation) -> bool;
        let groups: [(&str, &str, Covers); 2] = [
            ("deposit_list", "the deposit list", checks),
            ("report", "the deposit report", from_file),
        ];
        for (kind, what, covers) in groups {
            let stated: Vec<&StatedTotal> = self
                .stated_totals
                .iter()
                .filter(|t| t.kind == kind || (kind == "deposit_list" && t.kind == "deposit_slip"))
                .collect();
            if stated.is_empty() {
                continue;
            }
            let rows: Vec<&Donation> = self
                .records
                .iter()
                .filter(|r| stated.iter().any(|t| covers(t, r)))
                .collect();
            if stated.iter().any(|t| t.amount.is_some()) {
                let said: rust_decimal::Decimal = stated.iter().filter_map(|t| t.amount).sum();
                let sum: rust_decimal::Decimal = rows.iter().filter_map(|r| r.amount).sum();
                if said != sum {
                    out.push(DepositWarning {
                        code: "total_differs",
                        message: format!(
                            "{what} says ${}; the rows add up to ${}: look for a missing, \
                             extra or misread row",
                            crate::donation::format_amount(said),
                            crate::donation::format_amount(sum)
                        ),
                    });
                }
            }
            if stated.iter().any(|t| t.count.is_some()) {
                let said: u32 = stated.iter().filter_map(|t| t.count).sum();
                if said as usize != rows.len() {
                    out.push(DepositWarning {
                        code: "count_differs",
                        message: format!(
                            "{what} lists {said} items; there are {} rows",
                            rows.len()
                        ),
                    });
                }
            }
        }
        // A model that read the slip's date as every check's date: the gift dates are wrong.
        let dated: Vec<&Donation> = self
            .records
            .iter()
            .filter(|r| r.payment_method.is_some_and(PaymentMethod::is_check))
            .filter(|r| r.check_date.is_some() && r.deposit_date.is_some())
            .collect();
        if dated.len() >= 2 && dated.iter().all(|r| r.check_date == r.deposit_date) {
            out.push(DepositWarning {
                code: "check_dates_are_the_deposit_date",
                message: "every check carries the deposit slip's date: the check dates were \
                          probably read from the slip; check them against the checks"
                    .into(),
            });
        }
        out
    }
}

/// A file's rows cannot be replaced: one of them has a sales receipt in QuickBooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlreadySent;

/// One uploaded file and the job that reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepositFile {
    pub id: String,
    pub name: String,
    pub size: u64,
    /// pdf, jpeg, png, csv
    pub kind: String,
    pub job_id: String,
    pub uploaded_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum DepositError {
    #[error("Redis error: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("deposit {0} is damaged in storage: {1}")]
    Corrupt(String, serde_json::Error),
    #[error("cannot encode deposit: {0}")]
    Encode(serde_json::Error),
    #[error("deposit {0} is changing too fast; try again")]
    Busy(String),
    /// Writing the deposit would leave Redis (mini plans: 25 MB, refusing writes when full)
    /// with less than `REDIS_MIN_HEADROOM_MB` free; the deposit is left as it was.
    #[error(
        "there is not enough room in Redis: writing the deposit with these records needs \
         {:.1} MB and {:.1} MB is free. Put this file in a new deposit, or ask the operator to \
         free space or move to a larger Redis plan; then retry the file.",
        mb(*.need),
        mb(*.free)
    )]
    NoRoom { need: u64, free: u64 },
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// Redis memory a deposit write takes at its peak, as a multiple of the new JSON: the command's
/// argument, the script's copy of it and the stored value, each rounded up to the allocator's
/// size class, while the old value is still held. Measured 3.1-3.8 (docs/MEMORY.md, "CSV files
/// and the Redis budget").
pub const WRITE_COST_FACTOR: f64 = 4.0;

/// Default of `REDIS_MIN_HEADROOM_MB`, in bytes.
pub const DEFAULT_MIN_HEADROOM: u64 = 5 * 1_048_576;

/// Compare-and-set: ARGV[1] is the revision read ('' = create), ARGV[2] the document.
const CAS: &str = r"
local rev = redis.call('HGET', KEYS[1], 'rev')
if ARGV[1] == '' then
  if rev then return -1 end
  redis.call('HSET', KEYS[1], 'rev', 1, 'doc', ARGV[2], 'ttl', ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[4])
  return 1
end
if rev ~= ARGV[1] then return 0 end
local ttl = redis.call('HGET', KEYS[1], 'ttl') or ARGV[3]
redis.call('HSET', KEYS[1], 'rev', tonumber(rev) + 1, 'doc', ARGV[2])
redis.call('EXPIRE', KEYS[1], ttl)
return 1
";

/// Sets a field of an existing deposit's hash (never creates one without its document).
const SET_IF_EXISTS: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
";

/// The treasurer's choices for how a deposit's files are read, kept beside its document (a
/// job reads them without loading the deposit).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepositOptions {
    /// Pending payments in CSV exports become rows with a warning instead of skipped lines.
    #[serde(default)]
    pub keep_pending: bool,
    /// This deposit's choice for its online gifts; none follows `ONLINE_GIFTS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_gifts: Option<crate::qbo::config::OnlineGifts>,
}

/// Attempts before a contended update gives up (each re-reads the deposit).
const CAS_ATTEMPTS: usize = 50;

#[derive(Clone)]
pub struct DepositStore {
    redis: RedisPool,
    keys: Keys,
    ttl: Duration,
    /// Redis memory (bytes) a merge must leave free: `REDIS_MIN_HEADROOM_MB`.
    min_headroom: u64,
}

impl DepositStore {
    pub fn new(redis: impl Into<RedisPool>, keys: Keys) -> Self {
        Self {
            redis: redis.into(),
            keys,
            ttl: DEPOSIT_TTL,
            min_headroom: DEFAULT_MIN_HEADROOM,
        }
    }

    /// Time a deposit created by this store is kept after its last change.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Redis memory (bytes) a job's merge must leave free.
    pub fn with_min_headroom(mut self, bytes: u64) -> Self {
        self.min_headroom = bytes;
        self
    }

    pub async fn create(&self, name: &str) -> Result<Deposit, DepositError> {
        let now = crate::jobs::now_ms();
        let deposit = Deposit {
            id: Uuid::new_v4().simple().to_string(),
            name: name.to_string(),
            created_at: now,
            updated_at: now,
            files: Vec::new(),
            records: Vec::new(),
            errors: Vec::new(),
            merged_jobs: Vec::new(),
            stated_totals: Vec::new(),
            bank_deposit: None,
        };
        let written = self.write(&deposit, "").await?;
        if written != 1 {
            // A fresh random id cannot exist; treat it as contention rather than panic.
            return Err(DepositError::Busy(deposit.id));
        }
        Ok(deposit)
    }

    pub async fn get(&self, id: &str) -> Result<Option<Deposit>, DepositError> {
        Ok(self.load(id).await?.map(|(_, d)| d))
    }

    /// The deposit's reading options (defaults when none were set or it is gone).
    pub async fn options(&self, id: &str) -> Result<DepositOptions, DepositError> {
        let raw: Option<String> = self
            .redis
            .get()
            .await?
            .hget(self.keys.deposit(id), "opts")
            .await?;
        Ok(raw
            .and_then(|r| serde_json::from_str(&r).ok())
            .unwrap_or_default())
    }

    /// Sets the deposit's reading options; false when the deposit does not exist.
    pub async fn set_options(&self, id: &str, opts: &DepositOptions) -> Result<bool, DepositError> {
        let json = serde_json::to_string(opts).map_err(DepositError::Encode)?;
        let set: i32 = redis::Script::new(SET_IF_EXISTS)
            .key(self.keys.deposit(id))
            .arg("opts")
            .arg(json)
            .invoke_async(&mut self.redis.get().await?)
            .await?;
        Ok(set == 1)
    }

    /// Removes a deposit, its place in the list and its send pointer; false when it was not
    /// there. Its files and job records are the caller's to remove.
    pub async fn delete(&self, id: &str) -> Result<bool, DepositError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(self.keys.deposit(id))
            .zrem(self.keys.deposits(), id)
            .ignore()
            .del(self.keys.deposit_send(id))
            .ignore()
            .del(self.keys.deposit_bank(id))
            .ignore()
            .del(self.keys.deposit_attach(id))
            .ignore();
        let (gone,): (i64,) = pipe.query_async(&mut self.redis.get().await?).await?;
        Ok(gone > 0)
    }

    /// Applies `change` atomically: `Continue(t)` writes the changed deposit, `Break(t)` leaves
    /// it as it was. `change` may run more than once (after a conflict) and must not have other
    /// side effects. `None` when the deposit does not exist.
    pub async fn update<T>(
        &self,
        id: &str,
        change: impl FnMut(&mut Deposit) -> ControlFlow<T, T>,
    ) -> Result<Option<T>, DepositError> {
        self.update_checked(id, change, false).await
    }

    /// [`DepositStore::update`]; with `check_room`, the changed deposit is written only when
    /// Redis has room for the write and `min_headroom` besides ([`DepositError::NoRoom`]).
    async fn update_checked<T>(
        &self,
        id: &str,
        mut change: impl FnMut(&mut Deposit) -> ControlFlow<T, T>,
        check_room: bool,
    ) -> Result<Option<T>, DepositError> {
        for attempt in 0..CAS_ATTEMPTS {
            let Some((rev, mut deposit)) = self.load(id).await? else {
                return Ok(None);
            };
            let out = match change(&mut deposit) {
                ControlFlow::Break(t) => return Ok(Some(t)),
                ControlFlow::Continue(t) => t,
            };
            deposit.updated_at = crate::jobs::now_ms();
            let doc = serde_json::to_string(&deposit).map_err(DepositError::Encode)?;
            if check_room {
                self.check_room(doc.len()).await?;
            }
            if self.write_doc(&deposit, &doc, &rev).await? == 1 {
                return Ok(Some(out));
            }
            // Lost the race: back off a little, with jitter, and apply the change again.
            let wait = 2 + fastrand::u64(0..(5 * (attempt as u64 + 1)).min(100));
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        Err(DepositError::Busy(id.to_string()))
    }

    /// The newest deposits first.
    pub async fn list(&self, limit: usize) -> Result<Vec<Deposit>, DepositError> {
        let mut conn = self.redis.get().await?;
        let ids: Vec<String> = conn.zrevrange(self.keys.deposits(), 0, -1).await?;
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for chunk in ids.chunks(100) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.hget(self.keys.deposit(id), "doc");
            }
            let docs: Vec<Option<String>> = pipe.query_async(&mut conn).await?;
            for (id, doc) in chunk.iter().zip(docs) {
                match doc {
                    Some(doc) => out.push(decode(id, &doc)?),
                    None => gone.push(id.clone()),
                }
            }
            if out.len() >= limit {
                break;
            }
        }
        if !gone.is_empty() {
            // Deposits that expired: drop them from the index too.
            let _: () = conn.zrem(self.keys.deposits(), gone).await?;
        }
        out.truncate(limit);
        Ok(out)
    }

    /// Merges a finished job's records and errors into its deposit, once per job. Returns
    /// `None` when the deposit no longer exists, and [`DepositError::NoRoom`] (the deposit
    /// unchanged) when Redis has no room for the merged deposit.
    pub async fn merge_job(
        &self,
        deposit_id: &str,
        job_id: &str,
        records: &[Donation],
        errors: &[ExtractError],
    ) -> Result<Option<MergeSummary>, DepositError> {
        self.merge_job_stating(deposit_id, job_id, records, errors, &[])
            .await
    }

    /// [`DepositStore::merge_job`], with the totals the job's papers state.
    pub async fn merge_job_stating(
        &self,
        deposit_id: &str,
        job_id: &str,
        records: &[Donation],
        errors: &[ExtractError],
        totals: &[crate::extract::StatedTotal],
    ) -> Result<Option<MergeSummary>, DepositError> {
        self.update_checked(
            deposit_id,
            |d| {
                if d.merged_jobs.iter().any(|j| j == job_id) {
                    return ControlFlow::Break(MergeSummary::default());
                }
                d.merged_jobs.push(job_id.to_string());
                d.errors.extend(errors.iter().cloned());
                d.stated_totals.extend(totals.iter().cloned());
                let mut incoming = records.to_vec();
                for r in &mut incoming {
                    r.provenance.job = Some(job_id.to_string());
                }
                ControlFlow::Continue(merge_into(&mut d.records, incoming))
            },
            true,
        )
        .await
    }

    /// Takes a job's rows out of its deposit so its file can be read again: the rows it added
    /// (a row it only folded into another file's row stays, as that row's history), its page
    /// errors and its place among the merged jobs. `Ok(None)`: no such deposit;
    /// `Err(Sent)` when one of its rows is in QuickBooks already (nothing changes).
    pub async fn forget_job(
        &self,
        deposit_id: &str,
        job_id: &str,
        file_name: &str,
    ) -> Result<Option<Result<usize, AlreadySent>>, DepositError> {
        self.update(deposit_id, |d| {
            let own = |r: &Donation| r.provenance.job.as_deref() == Some(job_id);
            if d.records
                .iter()
                .any(|r| own(r) && r.qbo.sales_receipt_id.is_some())
            {
                return ControlFlow::Break(Err(AlreadySent));
            }
            let before = d.records.len();
            d.records.retain(|r| !own(r));
            d.errors.retain(|e| e.file != file_name);
            d.stated_totals.retain(|t| t.file != file_name);
            d.merged_jobs.retain(|j| j != job_id);
            ControlFlow::Continue(Ok(before - d.records.len()))
        })
        .await
    }

    /// Refuses a write of a `doc_len`-byte deposit that would leave Redis less than half of
    /// `min_headroom` free (a Redis at its `maxmemory` refuses every write, jobs and sessions
    /// too). Uploads stop at the whole headroom; a merge may use half of it, since the merge is
    /// what lets a job end and free its upload: with uploads queued up to the limit, a job must
    /// still be able to add its records. No limit (`maxmemory` 0) means no check.
    async fn check_room(&self, doc_len: usize) -> Result<(), DepositError> {
        let mem = crate::redis_conn::memory_info(&mut self.redis.get().await?).await?;
        let Some(free) = mem.headroom() else {
            return Ok(());
        };
        let need =
            ((doc_len as f64 * WRITE_COST_FACTOR) as u64).saturating_add(self.min_headroom / 2);
        if need > free {
            tracing::warn!(
                need_mb = mb(need),
                free_mb = mb(free),
                "deposit not written: Redis memory headroom too low"
            );
            return Err(DepositError::NoRoom { need, free });
        }
        Ok(())
    }

    async fn load(&self, id: &str) -> Result<Option<(String, Deposit)>, DepositError> {
        let (rev, doc): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(self.keys.deposit(id))
            .arg("rev")
            .arg("doc")
            .query_async(&mut self.redis.get().await?)
            .await?;
        match (rev, doc) {
            (Some(rev), Some(doc)) => Ok(Some((rev, decode(id, &doc)?))),
            _ => Ok(None),
        }
    }

    async fn write(&self, d: &Deposit, rev: &str) -> Result<i64, DepositError> {
        let doc = serde_json::to_string(d).map_err(DepositError::Encode)?;
        self.write_doc(d, &doc, rev).await
    }

    /// Writes `d`, already encoded as `doc`.
    async fn write_doc(&self, d: &Deposit, doc: &str, rev: &str) -> Result<i64, DepositError> {
        Ok(redis::Script::new(CAS)
            .key(self.keys.deposit(&d.id))
            .key(self.keys.deposits())
            .arg(rev)
            .arg(doc)
            .arg(self.ttl.as_secs().max(1))
            .arg(&d.id)
            .arg(d.created_at)
            .invoke_async(&mut self.redis.get().await?)
            .await?)
    }
}

fn decode(id: &str, doc: &str) -> Result<Deposit, DepositError> {
    serde_json::from_str(doc).map_err(|e| DepositError::Corrupt(id.to_string(), e))
}

/// A field the treasurer's edit could not take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

/// Fields a person may edit, as the API names them.
pub const EDITABLE_FIELDS: &[&str] = &[
    "name",
    "organization_name",
    "salutation",
    "payment_ref",
    "amount",
    "payment_date",
    "check_date",
    "postmark_date",
    "deposit_date",
    "deposit_method",
    "payment_method",
    "memo",
    "address_line_1",
    "city",
    "state",
    "zip",
    "email",
    "phone",
    "keep_out",
    "duplicate_ok",
];

/// The fields a sales receipt shows: editing one of a sent row outdates its receipt.
pub const RECEIPT_FIELDS: &[&str] = &[
    "payment_ref",
    "amount",
    "payment_date",
    "payment_method",
    "memo",
    "name",
    "organization_name",
];

/// Applies a person's edit (`{"amount": "125.00", "memo": null, ...}`) to a record: every field
/// is checked first and nothing changes unless all are valid. A null or blank value clears the
/// field. The record is re-validated afterwards; the values are kept as entered.
pub fn apply_patch(
    d: &mut Donation,
    patch: &serde_json::Map<String, serde_json::Value>,
    rules: &Rules,
) -> Result<Vec<String>, Vec<FieldProblem>> {
    let mut problems = Vec::new();
    let mut next = d.clone();
    let mut changed = Vec::new();
    for (field, value) in patch {
        if let serde_json::Value::String(s) = value {
            // Before any parsing: an over-long value is refused, never trimmed or stored.
            if let Err(p) = crate::limits::check(crate::limits::Scope::Record, field, s) {
                problems.push(p);
                continue;
            }
        }
        let text = match value {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => normalize::clean(Some(s.clone())),
            serde_json::Value::Number(n) if field == "amount" => Some(n.to_string()),
            serde_json::Value::Bool(b) if field == "keep_out" || field == "duplicate_ok" => {
                Some(b.to_string())
            }
            _ => {
                problems.push(FieldProblem {
                    field: field.clone(),
                    message: "must be text or null".into(),
                });
                continue;
            }
        };
        if let Err(message) = set_field(&mut next, field, text) {
            problems.push(FieldProblem {
                field: field.clone(),
                message,
            });
        } else {
            changed.push(field.clone());
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    // Problems read from the paper no longer apply to a value the treasurer entered.
    next.issues.retain(|i| {
        let f = i.field.as_deref().unwrap_or_default();
        !changed
            .iter()
            .any(|c| c == f || (c == "name" && f == "payer"))
    });
    normalize::revalidate(&mut next, rules);
    for f in &changed {
        if f != "keep_out" && f != "duplicate_ok" && !next.edited.contains(f) {
            next.edited.push(f.clone());
        }
    }
    // A sent row edited where its receipt shows it: the receipt can be updated from the page.
    if next.qbo.sales_receipt_id.is_some()
        && changed.iter().any(|f| RECEIPT_FIELDS.contains(&f.as_str()))
    {
        next.qbo.receipt_outdated = true;
    }
    *d = next;
    Ok(changed)
}

fn set_field(d: &mut Donation, field: &str, v: Option<String>) -> Result<(), String> {
    let date = |v: Option<String>| -> Result<_, String> {
        v.map(|s| parse_date(&s).map_err(|e| e.to_string()))
            .transpose()
    };
    match field {
        "name" => normalize::set_name(d, v),
        "organization_name" => d.payer.organization_name = v,
        "salutation" => d.payer.salutation = v,
        "payment_ref" => d.payment_ref = v,
        "amount" => {
            d.amount = v
                .map(|s| parse_amount(&s).map_err(|e| e.to_string()))
                .transpose()?;
            if let Some(a) = d.amount {
                if a <= rust_decimal::Decimal::ZERO {
                    return Err(format!("${a} is not a positive amount"));
                }
            }
        }
        "payment_date" => d.payment_date = date(v)?,
        "check_date" => d.check_date = date(v)?,
        "postmark_date" => d.postmark_date = date(v)?,
        "deposit_date" => d.deposit_date = date(v)?,
        "deposit_method" => d.deposit_method = v,
        "payment_method" => {
            use crate::donation::PaymentMethod;
            d.payment_method = match v.as_deref().map(str::to_ascii_lowercase).as_deref() {
                None => None,
                Some("check" | "cheque") => Some(PaymentMethod::Check),
                Some("handwritten_check") => Some(PaymentMethod::HandwrittenCheck),
                Some("printed_check") => Some(PaymentMethod::PrintedCheck),
                Some("money_order") => Some(PaymentMethod::MoneyOrder),
                Some("online") => Some(PaymentMethod::Online),
                Some(_) => {
                    return Err(
                        "must be check, handwritten_check, printed_check, money_order \
                                or online"
                            .to_string(),
                    )
                }
            };
        }
        "memo" => d.memo = v,
        "address_line_1" => d.contact.address_line_1 = v,
        "city" => d.contact.city = v,
        "state" => {
            d.contact.state = v.map(|s| normalize::normalize_state(&s).unwrap_or(s));
        }
        "zip" => d.contact.zip = v.map(|z| normalize::normalize_zip(&z).unwrap_or(z)),
        "email" => d.contact.email = v.map(|e| e.to_lowercase()),
        "phone" => d.contact.phone = v.map(|p| normalize::normalize_phone(&p)),
        "duplicate_ok" => {
            d.qbo.duplicate_ok = match v.as_deref() {
                None | Some("false") => false,
                Some("true") => true,
                Some(_) => return Err("must be true or false".into()),
            };
        }
        "keep_out" => {
            if d.qbo.sales_receipt_id.is_some() {
                return Err("the row is in QuickBooks already".into());
            }
            d.qbo.keep_out = match v.as_deref() {
                None => None,
                Some("true") => Some(true),
                Some("false") => Some(false),
                Some(_) => return Err("must be true, false or null".into()),
            };
        }
        _ => {
            return Err(format!(
                "is not an editable field (editable: {})",
                EDITABLE_FIELDS.join(", ")
            ))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use serde_json::json;

    fn rules() -> Rules {
        Rules::new(NaiveDate::from_ymd_opt(2026, 11, 28).unwrap_or_default())
    }

    #[test]
    fn stated_totals_are_compared_with_the_rows_they_cover() {
        use crate::donation::PaymentMethod;
        use crate::extract::StatedTotal;
        let row = |file: &str, cents: i64, method: PaymentMethod| {
            let mut d = Donation::new(file);
            d.amount = Some(rust_decimal::Decimal::new(cents, 2));
            d.payment_method = Some(method);
            d
        };
        let total = |file: &str, kind: &str, cents: Option<i64>, count: Option<u32>| StatedTotal {
            file: file.into(),
            pages: vec![1],
            kind: kind.into(),
            amount: cents.map(|c| rust_decimal::Decimal::new(c, 2)),
            count,
        };
        let mut d = Deposit {
            id: "d".into(),
            name: "d".into(),
            created_at: 0,
            updated_at: 0,
            files: Vec::new(),
            records: vec![
                row("c1.jpg", 4000, PaymentMethod::HandwrittenCheck),
                row("c2.jpg", 120_000, PaymentMethod::PrintedCheck),
                // Online gifts are not on a deposit list.
                row("gifts.csv", 2500, PaymentMethod::Online),
            ],
            errors: Vec::new(),
            merged_jobs: Vec::new(),
            stated_totals: vec![total("list.jpg", "deposit_list", Some(124_000), Some(2))],
            bank_deposit: None,
        };
        assert!(d.warnings().is_empty(), "{:?}", d.warnings());
        d.stated_totals = vec![total("list.jpg", "deposit_list", Some(125_000), Some(3))];
        let w = d.warnings();
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(
            w[0].message,
            "the deposit list says $1,250.00; the rows add up to $1,240.00: look for a missing, \
             extra or misread row"
        );
        assert_eq!(
            w[1].message,
            "the deposit list lists 3 items; there are 2 rows"
        );
        // A printed report's total covers the rows read from it, online ones too.
        d.stated_totals = vec![total("gifts.csv", "report", Some(2500), None)];
        assert!(d.warnings().is_empty(), "{:?}", d.warnings());
        // Every check dated the deposit slip's day: the dates were read from the slip.
        let slip = chrono::NaiveDate::from_ymd_opt(2026, 3, 10);
        for r in &mut d.records[..2] {
            r.check_date = slip;
            r.deposit_date = slip;
        }
        let w = d.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].code, "check_dates_are_the_deposit_date");
        d.records[0].check_date = chrono::NaiveDate::from_ymd_opt(2026, 3, 2);
        assert!(d.warnings().is_empty());
    }

    #[test]
    fn the_payment_method_can_be_chosen() {
        use crate::donation::PaymentMethod;
        let mut d = Donation::new("gifts.csv");
        d.payment_method = Some(PaymentMethod::Online);
        let changed = apply_patch(&mut d, &patch(json!({"payment_method": "check"})), &rules());
        assert_eq!(changed.unwrap(), ["payment_method"]);
        assert_eq!(d.payment_method, Some(PaymentMethod::Check));
        let bad = apply_patch(
            &mut d,
            &patch(json!({"payment_method": "bitcoin"})),
            &rules(),
        );
        assert!(bad.is_err());
        assert_eq!(d.payment_method, Some(PaymentMethod::Check));
        apply_patch(
            &mut d,
            &patch(json!({"payment_method": "online"})),
            &rules(),
        )
        .unwrap();
        assert_eq!(d.payment_method, Some(PaymentMethod::Online));
    }

    fn patch(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn an_edit_over_a_length_limit_changes_nothing() {
        let mut d = Donation::new("scan.pdf");
        d.memo = Some("as written".into());
        let long = "m".repeat(1001);
        let problems = apply_patch(
            &mut d,
            &patch(json!({"memo": long, "city": "Evanston"})),
            &rules(),
        )
        .unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].field, "memo");
        assert!(
            problems[0].message.contains("1000"),
            "{}",
            problems[0].message
        );
        assert_eq!(d.memo.as_deref(), Some("as written"));
        assert_eq!(d.contact.city, None);
    }

    #[test]
    fn an_edit_is_validated_and_clears_stale_issues() {
        let mut d = Donation::new("scan.pdf");
        normalize::normalize(&mut d, &rules());
        assert!(d.has_issue("amount_missing"));
        let changed = apply_patch(
            &mut d,
            &patch(
                json!({"amount": "$1,250.50", "payment_date": "11/20/2026", "name": "Jane Doe"}),
            ),
            &rules(),
        )
        .unwrap();
        assert_eq!(changed.len(), 3);
        assert_eq!(d.amount, Some(rust_decimal::Decimal::new(125_050, 2)));
        assert!(!d.has_issue("amount_missing"));
        assert!(!d.has_issue("date_missing"));
        assert_eq!(
            d.payer.aliases.first().map(String::as_str),
            Some("Jane Doe")
        );
        assert!(d.payer.aliases.iter().any(|a| a == "Doe, Jane"));
    }

    #[test]
    fn a_bad_edit_changes_nothing_and_names_every_problem() {
        let mut d = Donation::new("scan.pdf");
        d.memo = Some("kept".into());
        let before = d.clone();
        let err = apply_patch(
            &mut d,
            &patch(json!({"amount": "twelve", "check_date": "31/31/2026", "memo": "x", "colour": "red"})),
            &rules(),
        )
        .unwrap_err();
        let fields: Vec<_> = err.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields.len(), 3, "{err:?}");
        for f in ["amount", "check_date", "colour"] {
            assert!(fields.contains(&f), "{f} missing from {err:?}");
        }
        assert_eq!(d, before);
        assert!(apply_patch(&mut d, &patch(json!({"amount": "-5"})), &rules()).is_err());
    }

    #[test]
    fn null_clears_and_the_treasurers_date_wins() {
        let mut d = Donation::new("scan.pdf");
        d.payment_method = Some(crate::donation::PaymentMethod::HandwrittenCheck);
        d.postmark_date = NaiveDate::from_ymd_opt(2026, 11, 1);
        d.memo = Some("x".into());
        apply_patch(
            &mut d,
            &patch(json!({"memo": null, "payment_date": "2026-11-03", "zip": "2134"})),
            &rules(),
        )
        .unwrap();
        assert_eq!(d.memo, None);
        assert_eq!(d.payment_date, NaiveDate::from_ymd_opt(2026, 11, 3));
        assert_eq!(d.contact.zip.as_deref(), Some("02134"));
    }
}
