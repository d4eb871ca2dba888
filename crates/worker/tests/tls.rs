//! rediss:// with a self-signed certificate, as Heroku Key-Value Store serves it: a real
//! redis-server with TLS on a free port, and the real binary talking to it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fom_testkit::KillOnDrop as Server;

#[test]
fn rediss_with_a_self_signed_certificate_works() {
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("redis-server is needed (make redis installs it)");
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=self-signed",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success(), "openssl could not make a certificate");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _server = Server(
        Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--tls-auth-clients",
                "no",
            ])
            .arg("--tls-cert-file")
            .arg(&cert)
            .arg("--tls-key-file")
            .arg(&key)
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("rediss://127.0.0.1:{port}");
    let start = Instant::now();
    loop {
        let out = Command::new(env!("CARGO_BIN_EXE_fom-worker"))
            .env("REDIS_URL", &url)
            .env("KEY_PREFIX", "tls-test")
            .args(["jobs", "list"])
            .output()
            .unwrap();
        if out.status.success() {
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no jobs");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no TLS connection: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // With verification asked for, the self-signed certificate is refused.
    let out = Command::new(env!("CARGO_BIN_EXE_fom-worker"))
        .env("REDIS_URL", &url)
        .env("REDIS_TLS_VERIFY", "1")
        .args(["jobs", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}
