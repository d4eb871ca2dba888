//! Test-only helpers shared by the crates' integration tests and `tests/`.
//!
//! - [`fixtures`]: PDFs and CSVs made on the fly (encrypted, corrupt, empty, text, scans).
//! - [`bin_path`]: the path of a workspace binary, built on demand.
//! - [`examples`]: the content of the committed `examples/` files, so a test can prove the
//!   committed files are what this code generates.
//! - [`qbo`]: a contract fake of Intuit OAuth 2.0 and the QuickBooks Online v3 API.
//!
//! Contract fakes (QuickBooks, Intuit OAuth, Gemini) are added with their issues.

pub mod examples;
pub mod fixtures;
pub mod gemini;
pub mod moto;
pub mod qbo;
pub mod server;
pub mod web;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Redis the tests use: `REDIS_URL`, else the machine's 127.0.0.1:6379 (`make redis`).
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Deletes every key under `prefix` (`<prefix>:*`): a test's own keyspace, after it. Best
/// effort: a test's result never depends on its clean-up.
pub fn delete_keys(redis_url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(redis_url) else {
        return;
    };
    let Ok(mut conn) = client.get_connection() else {
        return;
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query(&mut conn)
        .unwrap_or_default();
    for chunk in keys.chunks(500) {
        let _: Result<(), _> = redis::cmd("DEL").arg(chunk).query(&mut conn);
    }
}

static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// Path of binary `name` from package `package`, in the same target profile as the running
/// test; builds it first when it is missing (e.g. `cargo test -p fom-e2e` alone).
pub fn bin_path(package: &str, name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test-binary>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let path = profile_dir.join(name);
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !path.is_file() {
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "-p", package, "--bin", name]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status();
        assert!(
            status.as_ref().is_ok_and(|s| s.success()),
            "building {name} failed: {status:?}"
        );
    }
    path
}

/// A child process that is killed and reaped when dropped (servers started by tests).
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
