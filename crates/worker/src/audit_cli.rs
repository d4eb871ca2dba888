//! `fom-worker audit`: the audit log for the operator, newest first.

use std::process::ExitCode;

use fom_core::audit::{AuditEvent, AuditKind};

use crate::settings::WorkerSettings;

#[derive(clap::Args)]
pub struct AuditArgs {
    /// Only events of this kind (sign_in, upload, receipt_created, ...).
    #[arg(long)]
    kind: Option<String>,
    /// At most this many events.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

pub async fn run(ws: &WorkerSettings, args: &AuditArgs) -> anyhow::Result<ExitCode> {
    let kind = match args.kind.as_deref() {
        None => None,
        Some(k) => Some(AuditKind::parse(k).ok_or_else(|| {
            let all: Vec<&str> = AuditKind::ALL.iter().map(|k| k.as_str()).collect();
            anyhow::anyhow!("unknown kind {k:?}; one of: {}", all.join(", "))
        })?),
    };
    let services = ws.connect_briefly().await?.services;
    let page = services.audit.list(kind, None, args.limit).await?;
    for e in &page.events {
        if args.json {
            println!("{}", serde_json::to_string(e)?);
        } else {
            println!("{}", line(e));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `time  kind  client  details` for a terminal.
fn line(e: &AuditEvent) -> String {
    let at = chrono::DateTime::from_timestamp_millis(e.at)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default();
    let details: Vec<String> = e
        .details
        .iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect();
    format!(
        "{at}Z  {:<22}  {:<15}  {}",
        e.kind.as_str(),
        e.actor.client.as_deref().unwrap_or("-"),
        details.join(" ")
    )
}
