//! `fake-gemini [--port P] [--latency-ms N] [--key K] [--model M]...`: the Gemini contract
//! fake of `fom_testkit::gemini` as a process (for benchmarks). Prints
//! `listening on http://127.0.0.1:P` and serves until killed.

use std::process::ExitCode;
use std::time::Duration;

use fom_testkit::gemini::{FakeGemini, FakeOptions};

const USAGE: &str = "usage: fake-gemini [--port P] [--latency-ms N] [--key K] [--model M]...";

fn parse(args: &[String]) -> Result<(u16, FakeOptions), String> {
    let mut port = 0u16;
    let mut opts = FakeOptions::default();
    let mut models = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        if name == "-h" || name == "--help" {
            return Err(String::new());
        }
        if !["--port", "--latency-ms", "--key", "--model"].contains(&name) {
            return Err(format!("unknown argument {name:?}"));
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))?,
        };
        match name {
            "--port" => port = value.parse().map_err(|_| format!("bad --port {value:?}"))?,
            "--latency-ms" => {
                let ms: u64 = value
                    .parse()
                    .map_err(|_| format!("bad --latency-ms {value:?}"))?;
                opts.latency = Duration::from_millis(ms);
            }
            "--key" => opts.api_key = value,
            "--model" => models.push(value),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if !models.is_empty() {
        opts.models = models;
    }
    Ok((port, opts))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (port, opts) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("fake-gemini: {e}");
            }
            eprintln!("{USAGE}");
            return if e.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    let fake = match FakeGemini::start_on(port, opts) {
        Ok(fake) => fake,
        Err(e) => {
            eprintln!("fake-gemini: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {}", fake.base_url());
    loop {
        std::thread::park();
    }
}
