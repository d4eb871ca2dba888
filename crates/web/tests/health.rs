//! The real fom-web binary answers /health with the memory monitor, and refuses bad config.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fom_testkit::KillOnDrop as Server;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn health_reports_memory_monitor() {
    let port = free_port();
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_fom-web"))
            .env("PORT", port.to_string())
            .env("WEB_CONCURRENCY", "1")
            .env("MEMORY_WARNING_MB", "300")
            .env("MEMORY_CRITICAL_MB", "350")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let response = loop {
        if let Some(r) = get(port, "/health") {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "fom-web did not answer on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body = &response[response.find("\r\n\r\n").unwrap() + 4..];
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    let mm = &json["system"]["memory_monitor"];
    assert!(mm["rss_mb"].as_f64().unwrap() > 1.0);
    assert_eq!(mm["warning_mb"], 300.0);
    assert_eq!(mm["critical_mb"], 350.0);
    assert_eq!(mm["status"], "ok");

    let missing = get(port, "/nope").unwrap();
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
}

#[test]
fn bad_port_is_refused_at_start_up() {
    let out = Command::new(env!("CARGO_BIN_EXE_fom-web"))
        .env("PORT", "http")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PORT"));
}
