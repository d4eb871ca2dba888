//! Instant pickup: apalis-redis fetches when a consumer is polled, which an idle consumer is
//! only at its heartbeat (every `WORKER_HEARTBEAT_SECS`), so a job pushed to an idle worker
//! waited up to a heartbeat to start. A push now also publishes the job's id on the queue's
//! wake channel ([`fom_core::keys::Keys::queue_wake`]); each worker child subscribes on one
//! connection of its own and wakes its consumer, which fetches at once (the queue library's
//! `PollWith` strategy). Nothing else changes: the heartbeat still polls, so a wake-up lost
//! while the subscription reconnects costs at most a heartbeat, and recovery, leases and
//! acknowledgement stay the queue library's.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use fom_core::keys::Keys;
use fom_core::queue::QueueName;
use futures_util::{Stream, StreamExt};
use tokio::sync::Notify;

/// A consumer's wake-up stream: yields once per wake-up (several pushes while it is busy
/// coalesce into one, which is enough: a fetch takes whatever is ready).
pub type WakeStream = Pin<Box<dyn Stream<Item = ()> + Send>>;

/// The wake-ups of one worker child, one per queue.
#[derive(Clone)]
pub struct Wakeups {
    documents: Arc<Notify>,
    qbo: Arc<Notify>,
}

impl Wakeups {
    /// Subscribes to both queues' wake channels on a connection of its own, kept open (and
    /// reopened after a Redis restart, every second until it answers) for the process's life.
    pub fn listen(url: &str, keys: &Keys) -> Self {
        let wake = Self {
            documents: Arc::new(Notify::new()),
            qbo: Arc::new(Notify::new()),
        };
        let channels = [
            (
                keys.queue_wake(QueueName::Documents.as_str()),
                wake.documents.clone(),
            ),
            (keys.queue_wake(QueueName::Qbo.as_str()), wake.qbo.clone()),
        ];
        let url = url.to_string();
        tokio::spawn(async move {
            loop {
                match subscribe(&url, &channels).await {
                    Ok(()) => tracing::warn!("queue wake-ups: subscription ended; reopening"),
                    Err(e) => {
                        tracing::warn!(error = %e, "queue wake-ups: cannot subscribe; retrying")
                    }
                }
                // Whatever was pushed meanwhile is fetched at the next heartbeat; and a wake-up
                // now makes sure nothing waits for it.
                for (_, n) in &channels {
                    n.notify_one();
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        wake
    }

    /// The wake-up stream of `queue`'s consumer.
    pub fn stream(&self, queue: QueueName) -> WakeStream {
        let notify = match queue {
            QueueName::Documents => self.documents.clone(),
            QueueName::Qbo => self.qbo.clone(),
        };
        Box::pin(futures_util::stream::unfold(notify, |n| async move {
            n.notified().await;
            Some(((), n))
        }))
    }
}

/// One subscription's life: each message wakes its queue's consumer; returns when the
/// connection ends.
async fn subscribe(url: &str, channels: &[(String, Arc<Notify>)]) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut pubsub = client.get_async_pubsub().await?;
    for (channel, _) in channels {
        pubsub.subscribe(channel).await?;
    }
    tracing::debug!("queue wake-ups: subscribed");
    let mut messages = pubsub.on_message();
    while let Some(msg) = messages.next().await {
        let channel = msg.get_channel_name();
        if let Some((_, n)) = channels.iter().find(|(c, _)| c == channel) {
            n.notify_one();
        }
    }
    Ok(())
}
