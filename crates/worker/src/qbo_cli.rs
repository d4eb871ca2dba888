//! `fom-worker qbo ...`: the operator's view of the QuickBooks connection.

use std::process::ExitCode;

use clap::Subcommand;

use crate::settings::WorkerSettings;

#[derive(Subcommand)]
pub enum QboCommand {
    /// Print the connection status as JSON (environment, company id, expiry times).
    Status,
    /// Refresh the access token now (one process at a time, across the deployment).
    Refresh,
    /// Match a deposit's unmatched rows to QuickBooks customers (prints the counts, the time
    /// and this process's peak RSS).
    Match { deposit_id: String },
}

pub async fn run(ws: &WorkerSettings, cmd: &QboCommand) -> anyhow::Result<ExitCode> {
    let Some(qbo) = ws.connect_briefly().await?.services.qbo else {
        anyhow::bail!("QuickBooks is not set up (QBO_CLIENT_ID is not set)");
    };
    let conn = qbo.client.connection();
    match cmd {
        QboCommand::Status => {}
        QboCommand::Refresh => {
            let current = conn
                .load()
                .await?
                .ok_or(fom_core::qbo::QboError::NotConnected)?;
            if let Err(e) = conn.refresh(&current.access_token).await {
                eprintln!("fom-worker: refresh failed: {e}");
                println!("{}", serde_json::to_string_pretty(&conn.status().await?)?);
                return Ok(ExitCode::FAILURE);
            }
        }
        QboCommand::Match { deposit_id } => {
            let started = std::time::Instant::now();
            let summary = qbo.match_deposit(deposit_id, false).await?;
            let mut out = serde_json::to_value(&summary)?;
            out["seconds"] = serde_json::json!(started.elapsed().as_secs_f64());
            out["peak_rss_mb"] = serde_json::json!(fom_core::memory::peak_rss_mb());
            println!("{}", serde_json::to_string_pretty(&out)?);
            return Ok(ExitCode::SUCCESS);
        }
    }
    println!("{}", serde_json::to_string_pretty(&conn.status().await?)?);
    Ok(ExitCode::SUCCESS)
}
