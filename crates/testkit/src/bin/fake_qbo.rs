//! `fake-qbo`: the Intuit OAuth and QuickBooks Online contract fake of `fom_testkit::qbo` as a
//! process. Prints `listening on http://127.0.0.1:P`, then the
//! `INTUIT_DISCOVERY_URL` and `QBO_API_BASE` to point the app at, and serves until killed.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use fom_testkit::qbo::{FakeQbo, FakeQboOptions};

#[derive(Parser)]
#[command(
    name = "fake-qbo",
    about = "Intuit OAuth + QuickBooks Online contract fake"
)]
struct Args {
    /// Port on 127.0.0.1 (0: a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// The company id the authorization hands out.
    #[arg(long)]
    realm: Option<String>,
    /// When given, authorize and token requests must use exactly this redirect URI.
    #[arg(long)]
    redirect_uri: Option<String>,
    #[arg(long)]
    client_id: Option<String>,
    #[arg(long)]
    client_secret: Option<String>,
    /// Delay before each API answer.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut opts = FakeQboOptions {
        redirect_uri: args.redirect_uri,
        latency: Duration::from_millis(args.latency_ms),
        ..FakeQboOptions::default()
    };
    if let Some(realm) = args.realm {
        opts.realm_id = realm;
    }
    if let Some(id) = args.client_id {
        opts.client_id = id;
    }
    if let Some(secret) = args.client_secret {
        opts.client_secret = secret;
    }
    let fake = match FakeQbo::start_on(args.port, opts) {
        Ok(fake) => fake,
        Err(e) => {
            eprintln!("fake-qbo: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {}", fake.base_url());
    // What fom-web and fom-worker need to talk to it.
    println!("INTUIT_DISCOVERY_URL={}", fake.discovery_url());
    println!("QBO_API_BASE={}", fake.api_base());
    loop {
        std::thread::park();
    }
}
