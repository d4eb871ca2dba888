//! A real `moto_server` (the S3-protocol fake from PyPI, installed by `make moto`) started for
//! one test on a free 127.0.0.1 port, and killed when the guard is dropped.

use std::io::{self, Read, Seek, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::web::free_port;
use crate::{repo_root, KillOnDrop};

/// How long moto may take to answer on its port (it starts in about a second).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `moto_server`; killed and reaped on drop.
pub struct Moto {
    endpoint: String,
    addr: SocketAddr,
    _child: KillOnDrop,
}

/// The `moto_server` to run: `MOTO_SERVER`, else the one `make moto` installs, else one on PATH.
pub fn moto_server_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MOTO_SERVER").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let local = repo_root().join("target/tools/moto/bin/moto_server");
    if local.is_file() {
        return Some(local);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("moto_server"))
            .find(|p| p.is_file())
    })
}

impl Moto {
    /// Starts `moto_server` and waits until its port answers. A port taken between choosing it
    /// and moto binding it (another test's server) makes moto exit: then another is tried.
    pub fn start() -> io::Result<Self> {
        let bin = moto_server_path().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "moto_server not found (MOTO_SERVER, target/tools/moto/bin, PATH): run `make moto`",
            )
        })?;
        let mut last = None;
        for _ in 0..3 {
            match Self::start_once(&bin) {
                Ok(moto) => return Ok(moto),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("moto_server did not start")))
    }

    fn start_once(bin: &Path) -> io::Result<Self> {
        let port = free_port();
        // Its request log goes to an unnamed temp file, shown only if it fails to start.
        let mut log = tempfile::tempfile()?;
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log.try_clone()?)
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot run {}: {e} (run `make moto`)", bin.display()),
                )
            })?;
        let mut child = KillOnDrop(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = child.0.try_wait()? {
                let mut out = String::new();
                log.rewind()?;
                log.read_to_string(&mut out)?;
                return Err(io::Error::other(format!(
                    "moto_server exited ({status}) on port {port}: {}",
                    out.trim()
                )));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(Self {
                    endpoint: format!("http://{addr}"),
                    addr,
                    _child: child,
                });
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("moto_server did not answer on port {port} within {START_TIMEOUT:?}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The endpoint URL, e.g. `http://127.0.0.1:40123` (plain http: AWS_ALLOW_HTTP=true).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Creates `bucket` (3-63 lower-case letters, digits, '-' or '.').
    pub fn create_bucket(&self, bucket: &str) -> io::Result<()> {
        create_bucket(self.addr, bucket)
    }

    /// Keys of the objects in `bucket` under `prefix` (for tests that prove nothing was left).
    pub fn object_keys(&self, bucket: &str, prefix: &str) -> io::Result<Vec<String>> {
        let body = expect_ok(request(
            self.addr,
            "GET",
            &format!("/{bucket}?list-type=2&prefix={prefix}"),
        )?)?;
        Ok(xml_values(&body, "Key"))
    }

    /// Keys of the multipart uploads begun in `bucket` and neither completed nor aborted.
    pub fn multipart_uploads(&self, bucket: &str) -> io::Result<Vec<String>> {
        let body = expect_ok(request(self.addr, "GET", &format!("/{bucket}?uploads"))?)?;
        Ok(xml_values(&body, "Key"))
    }
}

/// Creates a bucket with a plain, unsigned `PUT /<bucket>` (moto accepts unsigned requests).
pub fn create_bucket(addr: SocketAddr, bucket: &str) -> io::Result<()> {
    expect_ok(request(addr, "PUT", &format!("/{bucket}"))?).map(|_| ())
}

/// One unsigned HTTP/1.1 request without a body: (status line, body).
fn request(addr: SocketAddr, method: &str, target: &str) -> io::Result<(String, String)> {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        conn,
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut reply = String::new();
    conn.read_to_string(&mut reply)?;
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let status = head.lines().next().unwrap_or_default().to_string();
    Ok((status, body.to_string()))
}

fn expect_ok((status, body): (String, String)) -> io::Result<String> {
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(body)
    } else {
        Err(io::Error::other(format!("moto answered {status}: {body}")))
    }
}

/// The text of every `<tag>...</tag>` in a small XML reply (keys here are plain ids).
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(open.as_str())
        .skip(1)
        .filter_map(|rest| rest.split_once(close.as_str()).map(|(v, _)| v.to_string()))
        .collect()
}
