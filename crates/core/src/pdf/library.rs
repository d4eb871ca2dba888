//! Finding and binding the pdfium shared library, once per process.
//!
//! Search order: `PDFIUM_LIB_PATH` (the file, or a directory holding it), then `vendor/pdfium/`
//! (from the working directory, above the executable, and in this source tree), then the
//! executable's own directory. pdfium-render keeps the bindings in a process-wide cell, so the
//! library is bound exactly once and shared by every document.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use pdfium_render::prelude::Pdfium;

/// The command that installs the library; quoted in every "not found" message.
pub const INSTALL_HINT: &str = "make pdfium  (runs scripts/install-pdfium.sh)";

#[derive(Debug, Clone, thiserror::Error)]
pub enum LibraryError {
    #[error("pdfium library not found (looked in: {looked}). Install it with: {hint}")]
    NotFound { looked: String, hint: &'static str },
    #[error("pdfium library at {path} could not be loaded: {reason}. Reinstall it with: {hint}")]
    Unloadable {
        path: String,
        reason: String,
        hint: &'static str,
    },
}

static PDFIUM: OnceLock<Result<Pdfium, LibraryError>> = OnceLock::new();

/// The process-wide pdfium instance, binding the library on first use.
pub fn pdfium() -> Result<&'static Pdfium, LibraryError> {
    PDFIUM.get_or_init(bind).as_ref().map_err(Clone::clone)
}

fn bind() -> Result<Pdfium, LibraryError> {
    let env_path = std::env::var_os("PDFIUM_LIB_PATH").filter(|v| !v.is_empty());
    if let Some(p) = &env_path {
        if !Path::new(p).exists() {
            tracing::warn!(path = ?p, "PDFIUM_LIB_PATH does not exist; searching the defaults");
        }
    }
    let path = find(&candidates(env_path.map(PathBuf::from)))?;
    let bindings = Pdfium::bind_to_library(&path).map_err(|e| LibraryError::Unloadable {
        path: path.display().to_string(),
        reason: format!("{e:?}"),
        hint: INSTALL_HINT,
    })?;
    tracing::debug!(path = %path.display(), "pdfium bound");
    Ok(Pdfium::new(bindings))
}

/// The first candidate that exists, or an error naming every place looked and the fix.
pub fn find(candidates: &[PathBuf]) -> Result<PathBuf, LibraryError> {
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| LibraryError::NotFound {
            looked: candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            hint: INSTALL_HINT,
        })
}

/// Every place the library may be, in search order.
pub fn candidates(env_path: Option<PathBuf>) -> Vec<PathBuf> {
    let name = Pdfium::pdfium_platform_library_name();
    let in_dir = |dir: &Path| dir.join(&name);
    let mut out = Vec::new();
    if let Some(p) = env_path {
        if p.is_dir() {
            out.push(in_dir(&p));
        } else {
            out.push(p);
        }
    }
    let vendor = Path::new("vendor").join("pdfium");
    if let Ok(cwd) = std::env::current_dir() {
        out.push(in_dir(&cwd.join(&vendor)));
    }
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf));
    if let Some(dir) = &exe_dir {
        // target/<profile>/fom-worker (or target/<profile>/deps/test-binary) -> repository root
        for up in dir.ancestors().skip(1).take(3) {
            out.push(in_dir(&up.join(&vendor)));
        }
    }
    // The source tree this binary was built from (development and tests).
    let source_root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    out.push(in_dir(&source_root.join(&vendor)));
    if let Some(dir) = &exe_dir {
        out.push(in_dir(dir));
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_path_comes_first_and_a_directory_is_expanded() {
        let dir = tempfile::tempdir().unwrap();
        let c = candidates(Some(dir.path().to_path_buf()));
        assert_eq!(
            c[0],
            dir.path().join(Pdfium::pdfium_platform_library_name())
        );
        let c = candidates(Some(PathBuf::from("/x/libpdfium.so")));
        assert_eq!(c[0], PathBuf::from("/x/libpdfium.so"));
        assert!(c.iter().any(|p| p.ends_with("vendor/pdfium/libpdfium.so")));
    }

    #[test]
    fn missing_library_names_the_install_command() {
        let err = find(&[PathBuf::from("/nowhere/libpdfium.so")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nowhere/libpdfium.so"), "{err}");
        assert!(err.contains("make pdfium"), "{err}");
        assert!(err.contains("scripts/install-pdfium.sh"), "{err}");
    }
}
