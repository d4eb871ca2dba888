//! The bank-deposit job: the QuickBooks Deposit the treasurer asked for
//! ([`crate::qbo::bank`]), made on the worker so a crash or a deploy mid-way is recovered by
//! the queue, and made exactly once whatever happens.

use super::send_all::{latest_at, start_pointed, SendStart, StartError};
use super::{JobContext, JobEnd, JobFault};
use crate::qbo::sync::Qbo;
use crate::qbo::{ErrorKind, QboError};
use crate::services::Services;

/// Bank-deposit job ids start with this ([`super::queue_of`]).
pub const ID_PREFIX: &str = "bank-";

/// Queues the bank-deposit job of the deposit, or answers the one already queued or running.
pub async fn start(s: &Services, deposit_id: &str) -> Result<SendStart, StartError> {
    let pointer = s.keys.deposit_bank(deposit_id);
    start_pointed(
        s,
        deposit_id,
        &pointer,
        ID_PREFIX,
        "Record the bank deposit",
    )
    .await
}

/// The id of the deposit's latest bank-deposit job, if any.
pub async fn latest(s: &Services, deposit_id: &str) -> Result<Option<String>, redis::RedisError> {
    latest_at(s, &s.keys.deposit_bank(deposit_id)).await
}

pub(super) async fn run(
    id: &str,
    ctx: &JobContext,
    deposit_id: &str,
    qbo: &Qbo,
) -> Result<JobEnd, JobFault> {
    let s = &ctx.services;
    match qbo
        .record_bank_deposit(deposit_id, &crate::audit::Actor::default())
        .await
    {
        Ok(recorded) => {
            let body = serde_json::json!({"deposit_id": deposit_id, "bank_deposit": recorded});
            s.jobs.finish(id, &ctx.worker, &body).await?;
            Ok(JobEnd::Done)
        }
        Err(e) => qbo_end(e),
    }
}

/// How a `qbo` job ends on a QuickBooks error: busy is queued again (nothing was written);
/// Redis trouble is the queue's to retry; a lost connection or a vanished deposit can never
/// succeed as it is; anything else is the treasurer's to look at (the deposit or the row says
/// what).
pub(super) fn qbo_end(e: QboError) -> Result<JobEnd, JobFault> {
    let why = e.user_message();
    Ok(match e {
        QboError::Deposit(e) => return Err(e.into()),
        QboError::Redis(e) => return Err(JobFault::Other(format!("Redis error: {e}"))),
        e => match e.kind() {
            ErrorKind::Throttled => JobEnd::HandedBack { why, memory: false },
            ErrorKind::NotFound | ErrorKind::NotConnected | ErrorKind::ReconnectNeeded => {
                JobEnd::Dead(why)
            }
            _ => JobEnd::Failed(why),
        },
    })
}
