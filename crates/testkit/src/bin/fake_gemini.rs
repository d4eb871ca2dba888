//! `fake-gemini`: the Gemini contract fake of `fom_testkit::gemini` as a process (for
//! benchmarks). Prints `listening on http://127.0.0.1:P` and serves until killed.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use fom_testkit::gemini::{FakeGemini, FakeOptions};

#[derive(Parser)]
#[command(name = "fake-gemini", about = "Gemini generateContent contract fake")]
struct Args {
    /// Port on 127.0.0.1 (0: a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Delay before each successful answer.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// The only accepted API key.
    #[arg(long)]
    key: Option<String>,
    /// A model the fake knows (repeat for several).
    #[arg(long = "model")]
    models: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut opts = FakeOptions {
        latency: Duration::from_millis(args.latency_ms),
        ..FakeOptions::default()
    };
    if let Some(key) = args.key {
        opts.api_key = key;
    }
    if !args.models.is_empty() {
        opts.models = args.models;
    }
    let fake = match FakeGemini::start_on(args.port, opts) {
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
