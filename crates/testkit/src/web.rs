//! The real `fom-web` (and optionally `fom-worker`) started for a test, each test with its own
//! Redis key prefix, plus a small HTTP client that signs in like a browser.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{bin_path, KillOnDrop};

pub const PASSWORD: &str = "correct horse battery";
/// 64 bytes of 7s, base64: fine for tests, never for a deployment.
pub const SESSION_SECRET: &str =
    "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBw==";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// A unique Redis key prefix for one test.
pub fn unique_prefix(tag: &str) -> String {
    format!("t-{tag}-{}", &uuid_like()[..12])
}

fn uuid_like() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

pub struct Options {
    pub redis_url: String,
    pub env: Vec<(String, String)>,
    pub worker: bool,
    pub tag: &'static str,
    /// Reuse another stack's key prefix (a second dyno, or a restart).
    pub prefix: Option<String>,
    /// Logs (info level) of web and worker go to `web.log` and `worker.log` here.
    pub log_dir: Option<std::path::PathBuf>,
}

impl Options {
    pub fn new(tag: &'static str) -> Self {
        Self {
            redis_url: std::env::var("TEST_REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
            env: Vec::new(),
            worker: false,
            tag,
            prefix: None,
            log_dir: None,
        }
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn with_worker(mut self) -> Self {
        self.worker = true;
        self
    }

    pub fn same_keys_as(mut self, other: &Stack) -> Self {
        self.prefix = Some(other.prefix.clone());
        self
    }

    pub fn logs_in(mut self, dir: &std::path::Path) -> Self {
        self.log_dir = Some(dir.to_path_buf());
        self
    }

    pub fn redis(mut self, url: &str) -> Self {
        self.redis_url = url.into();
        self
    }
}

/// Running processes; killed, and the test's Redis keys removed, on drop.
pub struct Stack {
    pub port: u16,
    pub prefix: String,
    pub redis_url: String,
    _web: KillOnDrop,
    _worker: Option<KillOnDrop>,
}

impl Stack {
    /// Starts the processes and waits until /health answers (panics after 60 s: a test).
    pub fn start(opts: Options) -> Self {
        let port = free_port();
        let prefix = opts
            .prefix
            .clone()
            .unwrap_or_else(|| unique_prefix(opts.tag));
        let common = |cmd: &mut Command, name: &str| {
            cmd.env("REDIS_URL", &opts.redis_url)
                .env("KEY_PREFIX", &prefix)
                .env("RUST_LOG", "warn")
                .env_remove("UPLOAD_STORE")
                .stdin(Stdio::null())
                .stdout(Stdio::null());
            if let Some(dir) = &opts.log_dir {
                let file = std::fs::File::create(dir.join(format!("{name}.log")))
                    .unwrap_or_else(|e| panic!("log file: {e}"));
                cmd.env("RUST_LOG", "info").stderr(file);
            } else if std::env::var_os("TEST_SHOW_LOGS").is_none() {
                cmd.stderr(Stdio::null());
            }
            for (k, v) in &opts.env {
                cmd.env(k, v);
            }
        };
        let mut web = Command::new(bin_path("fom-web", "fom-web"));
        web.env("PORT", port.to_string())
            .env("WEB_CONCURRENCY", "2")
            .env("APP_PASSWORD", PASSWORD)
            .env("SESSION_SECRET", SESSION_SECRET)
            .env("INSECURE_COOKIES", "1");
        common(&mut web, "web");
        let web = KillOnDrop(web.spawn().unwrap_or_else(|e| panic!("fom-web: {e}")));
        let worker = opts.worker.then(|| {
            let mut w = Command::new(bin_path("fom-worker", "fom-worker"));
            // One child, as the tests that count or signal children expect; a test of the
            // scaling asks for `auto` itself.
            w.env("WORKER_HEARTBEAT_SECS", "1")
                .env("WORKER_PROCESSES", "1");
            common(&mut w, "worker");
            KillOnDrop(w.spawn().unwrap_or_else(|e| panic!("fom-worker: {e}")))
        });
        let stack = Self {
            port,
            prefix,
            redis_url: opts.redis_url,
            _web: web,
            _worker: worker,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !stack.answers() {
            assert!(Instant::now() < deadline, "fom-web did not start on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        stack
    }

    fn answers(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let req = "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        let mut out = String::new();
        s.write_all(req.as_bytes()).is_ok()
            && s.read_to_string(&mut out).is_ok()
            && out.starts_with("HTTP/1.1 ")
    }

    /// The fom-web process id (to read its `/proc/<pid>/status`).
    pub fn web_pid(&self) -> u32 {
        self._web.0.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What a browser on this site sends as `Origin`.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Signs in and returns the `Cookie` header value of the session.
    pub async fn login(&self, client: &reqwest::Client) -> String {
        let res = client
            .post(self.url("/login"))
            .header("Origin", self.origin())
            .form(&[("password", PASSWORD)])
            .send()
            .await
            .unwrap_or_else(|e| panic!("login: {e}"));
        assert_eq!(res.status().as_u16(), 303, "sign-in did not redirect");
        let set = res
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        set.split(';').next().unwrap_or_default().to_string()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        crate::delete_keys(&self.redis_url, &self.prefix);
    }
}

/// An HTTP client that does not follow redirects (tests look at them).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_default()
}

/// A private `redis-server` on a free port (for settings a shared server must not get, such as
/// `maxmemory`); killed on drop.
pub struct PrivateRedis {
    pub url: String,
    port: u16,
    args: Vec<String>,
    server: Option<KillOnDrop>,
    /// The append-only files of a durable server.
    _dir: Option<tempfile::TempDir>,
}

impl PrivateRedis {
    /// A server on a free port that keeps nothing on disk, with `extra` arguments.
    pub fn start(extra: &[&str]) -> Self {
        let mut args: Vec<String> = ["--save", "", "--appendonly", "no"]
            .iter()
            .map(|a| (*a).to_string())
            .collect();
        args.extend(extra.iter().map(|a| (*a).to_string()));
        Self::launch(args, None)
    }

    /// A server that writes every command to an append-only file before answering it
    /// (`appendfsync always`), so it can be killed with SIGKILL and started again
    /// ([`PrivateRedis::kill`], [`PrivateRedis::restart`]) with nothing acknowledged lost.
    pub fn durable() -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let args = vec![
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "yes".into(),
            "--appendfsync".into(),
            "always".into(),
            "--dir".into(),
            dir.path().display().to_string(),
        ];
        Self::launch(args, Some(dir))
    }

    fn launch(args: Vec<String>, dir: Option<tempfile::TempDir>) -> Self {
        let port = free_port();
        let mut redis = Self {
            url: format!("redis://127.0.0.1:{port}"),
            port,
            args,
            server: None,
            _dir: dir,
        };
        redis.restart();
        redis
    }

    /// SIGKILL: no shutdown, no final save, as when a host dies.
    pub fn kill(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.0.kill();
            let _ = s.0.wait();
        }
    }

    /// Starts the server (again) on the same port with the same files, and waits until it
    /// accepts connections (it may still be loading its data then, as a real restart is).
    pub fn restart(&mut self) {
        self.kill();
        let port = self.port.to_string();
        let server = Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1"])
            .args(&self.args)
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("redis-server: {e}"));
        self.server = Some(KillOnDrop(server));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
