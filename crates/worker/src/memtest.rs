//! `fom-worker memtest`: peak RSS and speed of the worker's page pipeline.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use fom_core::memory;
use fom_core::pdf::synth::{write_scan_pdf, ScanOptions};
use fom_core::pdf::{ImageSource, PdfConfig, PdfPages};
use serde::Serialize;

use fom_core::pipeline::PipelineSettings;

#[derive(clap::Args)]
pub struct Options {
    /// Pages of the generated scanned-style PDF (ignored with --file).
    #[arg(long, default_value_t = 200)]
    pub pages: u32,
    /// Render resolution (default: RENDER_DPI, 150).
    #[arg(long)]
    pub dpi: Option<u32>,
    /// Resolution of the generated scan's page images.
    #[arg(long, default_value_t = 300)]
    pub scan_dpi: u32,
    /// Measure this PDF instead of a generated one.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Render every page (no JPEG pass-through), so the rendering path is measured.
    #[arg(long)]
    pub force_render: bool,
    /// With --force-render: pdfium renders every page, full-page JPEGs too (no decoding at a
    /// reduced scale), as before that path existed; for comparison.
    #[arg(long)]
    pub pdfium_only: bool,
    /// Also run every page through the configured extractor (`EXTRACTOR`; with gemini this
    /// measures the request path, batches in flight included).
    #[arg(long)]
    pub extract: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Result {
    pages: u32,
    dpi: u32,
    file_mb: f64,
    peak_rss_mb: f64,
    seconds: f64,
    pages_per_sec: f64,
    rendered: u32,
    /// Full-page JPEGs decoded at a reduced scale to the render size (not rendered by pdfium).
    decoded: u32,
    passed_through: u32,
    failed: u32,
    jpeg_mb: f64,
    text_chars: u64,
    rss_after_mb: f64,
    generated: bool,
    peak_excludes_generation: bool,
    /// With --extract: the extractor, records and page errors it produced, model tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    extractor: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    records: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extract_errors: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<fom_core::extract::gemini::TokenUsage>,
}

pub fn run(settings: &PipelineSettings, opts: &Options) -> anyhow::Result<ExitCode> {
    let tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
    let (path, generated) = match &opts.file {
        Some(f) => (f.clone(), false),
        None => {
            let path = tmp.path().join("memtest-scan.pdf");
            let scan = ScanOptions {
                pages: opts.pages.max(1),
                dpi: opts.scan_dpi.clamp(72, 600),
                ..ScanOptions::default()
            };
            write_scan_pdf(&path, &scan).context("cannot generate the test PDF")?;
            (path, true)
        }
    };
    // Generating the PDF is not part of the pipeline: start the peak mark afresh.
    memory::release_free_memory();
    let peak_reset = memory::reset_peak_rss();

    let cfg = PdfConfig {
        dpi: opts.dpi.unwrap_or(settings.pdf.dpi),
        passthrough: settings.pdf.passthrough && !opts.force_render,
        scaled_decode: settings.pdf.scaled_decode && !opts.pdfium_only,
        images: true,
        ..settings.pdf.clone()
    };
    let file_mb = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) as f64 / 1_048_576.0;
    settings.monitor.log("memtest start");
    let started = Instant::now();
    let extractor = opts.extract.then(|| settings.extractor.clone());
    let mut doc = extractor.as_ref().map(|e| e.begin("memtest-scan.pdf"));
    let (mut records, mut extract_errors) = (0usize, 0usize);
    let mut tally = |outcomes: Vec<fom_core::extract::Outcome>| {
        for o in outcomes {
            match o {
                fom_core::extract::Outcome::Record(_) => records += 1,
                fom_core::extract::Outcome::Error(_) => extract_errors += 1,
                fom_core::extract::Outcome::Total(_) => {}
            }
        }
    };
    let pages = PdfPages::open(&path, &cfg).with_context(|| format!("{}", path.display()))?;
    let page_count = pages.page_count();
    let (mut rendered, mut decoded, mut passed, mut failed) = (0, 0, 0, 0);
    let (mut jpeg_bytes, mut text_chars) = (0u64, 0u64);
    for page in pages {
        match page {
            Ok(p) => {
                match p.source {
                    ImageSource::PassThrough => passed += 1,
                    ImageSource::Decoded => decoded += 1,
                    ImageSource::Rendered | ImageSource::None => rendered += 1,
                }
                jpeg_bytes += p.jpeg.len() as u64;
                text_chars += p.text.chars().count() as u64;
                if let Some(d) = doc.as_mut() {
                    tally(d.push(&p));
                }
                if p.number % fom_core::pipeline::MONITOR_EVERY_PAGES == 0 {
                    settings
                        .monitor
                        .log(&format!("memtest page {}/{page_count}", p.number));
                }
            }
            Err(e) => {
                failed += 1;
                tracing::warn!("{e}");
            }
        }
    }
    let mut usage = None;
    if let Some(d) = doc.take() {
        let meter = d.usage_meter();
        tally(d.finish());
        usage = meter.and_then(|m| m.lock().ok().map(|u| *u));
    }
    let seconds = started.elapsed().as_secs_f64();
    settings.monitor.log("memtest end");
    let result = Result {
        pages: page_count,
        dpi: cfg.dpi,
        file_mb: memory::round1(file_mb),
        peak_rss_mb: memory::round1(memory::peak_rss_mb()),
        seconds: (seconds * 100.0).round() / 100.0,
        pages_per_sec: memory::round1(f64::from(page_count) / seconds.max(1e-9)),
        rendered,
        decoded,
        passed_through: passed,
        failed,
        jpeg_mb: memory::round1(jpeg_bytes as f64 / 1_048_576.0),
        text_chars,
        rss_after_mb: memory::round1(memory::rss_mb()),
        generated,
        peak_excludes_generation: generated && peak_reset,
        extractor: extractor.as_ref().map(|e| e.name()),
        records: opts.extract.then_some(records),
        extract_errors: opts.extract.then_some(extract_errors),
        usage,
    };
    if opts.json {
        println!("{}", serde_json::to_string(&result)?);
    } else {
        println!(
            "{} pages at {} DPI ({} rendered, {} decoded at a reduced scale, {} passed through, {} failed): peak RSS {} MB, {} s, {} pages/s",
            result.pages,
            result.dpi,
            result.rendered,
            result.decoded,
            result.passed_through,
            result.failed,
            result.peak_rss_mb,
            result.seconds,
            result.pages_per_sec
        );
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
