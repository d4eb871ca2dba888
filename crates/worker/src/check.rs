//! `fom-worker check`: what the operator runs after a deploy (Heroku runs it once after the
//! app is created, app.json's `postdeploy`). The configuration was already checked on the way
//! in; this reaches each part the processes need and says, line by line, what works and what
//! to do about what does not. Exit 0 when everything needed works.

use std::process::ExitCode;

use fom_core::pipeline::PipelineSettings;

use crate::settings::WorkerSettings;

pub async fn run(ws: &WorkerSettings, pipeline: &PipelineSettings) -> anyhow::Result<ExitCode> {
    let mut ok = true;
    let mut say = |good: bool, line: String| {
        ok &= good;
        println!("{} {line}", if good { "ok  " } else { "FAIL" });
    };
    say(true, "configuration: every variable is valid".into());
    let connected = ws.connect_briefly().await;
    match &connected {
        Ok(c) => {
            let mut conn = c.services.redis.get().await?;
            let mem = fom_core::redis_conn::memory_info(&mut conn).await?;
            let mb = |b: u64| b as f64 / 1_048_576.0;
            let room = match mem.headroom() {
                Some(free) => format!(
                    "{:.1} MB used of {:.1} MB ({:.1} MB free)",
                    mb(mem.used),
                    mb(mem.max),
                    mb(free)
                ),
                None => format!("{:.1} MB used, no memory limit", mb(mem.used)),
            };
            say(true, format!("Redis: answers; {room}"));
        }
        Err(e) => say(
            false,
            format!("Redis: {e:#}; check REDIS_URL (the Key-Value Store add-on sets it)"),
        ),
    }
    match fom_core::pdf::library::pdfium() {
        Ok(_) => say(true, "pdfium: loaded".into()),
        Err(e) => say(false, format!("pdfium: {e}")),
    }
    if let Ok(c) = &connected {
        let s = &c.services;
        match s.store.exists("fom-check-probe").await {
            Ok(_) => say(true, "upload store: reachable".into()),
            Err(e) => say(
                false,
                format!("upload store: {e}; check UPLOAD_STORE and the AWS_* variables"),
            ),
        }
        match &s.qbo {
            None => say(
                true,
                "QuickBooks: not set up (QBO_CLIENT_ID empty): extraction and review only".into(),
            ),
            Some(q) => match q.client.connection().status().await {
                Ok(st) if st.connected => say(true, "QuickBooks: connected".into()),
                Ok(st) if st.reconnect_needed => say(
                    true,
                    format!(
                        "QuickBooks: set up; reconnect needed ({}): sign in and choose Reconnect",
                        st.message.unwrap_or_default()
                    ),
                ),
                Ok(_) => say(
                    true,
                    "QuickBooks: set up, not connected yet: sign in and choose Connect".into(),
                ),
                Err(e) => say(false, format!("QuickBooks: {e}")),
            },
        }
    }
    let extractor = match pipeline.extractor.name() {
        "gemini" => "gemini (scans and photos are read by Google's Gemini)",
        _ => "text (PDFs with a text layer and CSV files; scans need EXTRACTOR=gemini)",
    };
    say(true, format!("extractor: {extractor}"));
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
