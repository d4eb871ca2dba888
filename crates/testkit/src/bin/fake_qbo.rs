//! `fake-qbo [--port P] [--realm R] [--redirect-uri U] [--client-id I] [--client-secret S]
//! [--latency-ms N]`: the Intuit OAuth and QuickBooks Online contract fake of
//! `fom_testkit::qbo` as a process. Prints `listening on http://127.0.0.1:P` and serves
//! until killed.

use std::process::ExitCode;
use std::time::Duration;

use fom_testkit::qbo::{FakeQbo, FakeQboOptions};

const USAGE: &str = "usage: fake-qbo [--port P] [--realm R] [--redirect-uri U] \
                     [--client-id I] [--client-secret S] [--latency-ms N]";
const FLAGS: [&str; 6] = [
    "--port",
    "--realm",
    "--redirect-uri",
    "--client-id",
    "--client-secret",
    "--latency-ms",
];

fn parse(args: &[String]) -> Result<(u16, FakeQboOptions), String> {
    let mut port = 0u16;
    let mut opts = FakeQboOptions::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        if name == "-h" || name == "--help" {
            return Err(String::new());
        }
        if !FLAGS.contains(&name) {
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
            "--realm" => opts.realm_id = value,
            "--redirect-uri" => opts.redirect_uri = Some(value),
            "--client-id" => opts.client_id = value,
            "--client-secret" => opts.client_secret = value,
            "--latency-ms" => {
                let ms: u64 = value
                    .parse()
                    .map_err(|_| format!("bad --latency-ms {value:?}"))?;
                opts.latency = Duration::from_millis(ms);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok((port, opts))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (port, opts) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("fake-qbo: {e}");
            }
            eprintln!("{USAGE}");
            return if e.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    let fake = match FakeQbo::start_on(port, opts) {
        Ok(fake) => fake,
        Err(e) => {
            eprintln!("fake-qbo: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {}", fake.base_url());
    loop {
        std::thread::park();
    }
}
