//! ONNX Runtime through `ort`, loaded at run time from a shared library
//! (`load-dynamic`): the crate's own download needs a CDN that build
//! machines and robots cannot reach, and a robot's runtime comes from its
//! board vendor anyway.
//!
//! The library is found, in order, at `ORT_DYLIB_PATH`, at the vehicle
//! config's `model.onnxruntime`, next to the
//! executable (or in `../lib` from it), in a `.venv` made by
//! `scripts/setup.sh` (the PyPI `onnxruntime` wheel) in the working folder
//! or any folder above it or in the checkout nines was built from, and in
//! the system library folders.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;

use crate::{OnboardError, Result};

/// The environment variable that names the library explicitly.
pub const DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// How to get the library, for error messages.
pub const INSTALL_HINT: &str = "run `bash scripts/setup.sh` (it installs the PyPI onnxruntime wheel into .venv), \
or set ORT_DYLIB_PATH=/path/to/libonnxruntime.so (ONNX Runtime 1.17 or newer)";

static CONFIGURED: OnceLock<PathBuf> = OnceLock::new();

/// Names the library the vehicle config gives (`model.onnxruntime`); it is
/// used unless `ORT_DYLIB_PATH` is set. Call before the first model loads.
pub fn use_library(path: &Path) {
    let _ = CONFIGURED.set(path.to_path_buf());
}

/// Finds the ONNX Runtime shared library.
pub fn library_path() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(DYLIB_ENV) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(OnboardError::Runtime(format!(
                "{DYLIB_ENV}={} is not a file; point it at libonnxruntime.so, or unset it to search the usual places",
                path.display()
            )))
        };
    }
    if let Some(path) = CONFIGURED.get() {
        return if path.is_file() {
            Ok(path.clone())
        } else {
            Err(OnboardError::Runtime(format!(
                "model.onnxruntime = {} is not a file; install the target's ONNX Runtime there, or remove the key to use a bundled one",
                path.display()
            )))
        };
    }
    let mut folders = Vec::new();
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        folders.push(dir.to_path_buf());
        folders.push(dir.join("../lib"));
    }
    // The working folder and those above it, then the checkout this binary
    // was built from (where `scripts/setup.sh` made the venv).
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let starts = std::env::current_dir().into_iter().chain([checkout]);
    for start in starts {
        for dir in start.ancestors() {
            let lib = dir.join(".venv/lib");
            let Ok(entries) = std::fs::read_dir(&lib) else { continue };
            let mut pythons: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            pythons.sort();
            folders.extend(pythons.into_iter().map(|p| p.join("site-packages/onnxruntime/capi")));
        }
    }
    folders.extend(
        ["/usr/local/lib", "/usr/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu"]
            .map(PathBuf::from),
    );
    folders.iter().find_map(|dir| library_in(dir)).ok_or_else(|| {
        OnboardError::Runtime(format!(
            "the ONNX Runtime library (libonnxruntime.so) was not found; {INSTALL_HINT}"
        ))
    })
}

/// `libonnxruntime.so` or its newest versioned file in `dir`.
fn library_in(dir: &Path) -> Option<PathBuf> {
    let plain = dir.join("libonnxruntime.so");
    if plain.is_file() {
        return Some(plain);
    }
    let mut versioned: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libonnxruntime.so."))
        })
        .collect();
    versioned.sort();
    versioned.pop()
}

/// The process's ONNX Runtime environment, loading the library on first use.
pub fn environment() -> Result<&'static Environment> {
    static ENV: OnceLock<std::result::Result<Environment, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let path = library_path().map_err(|e| e.to_string())?;
        let builder = ort::init_from(&path)
            .map_err(|e| format!("loading ONNX Runtime from {}: {e}; {INSTALL_HINT}", path.display()))?;
        builder
            .with_name("nines")
            .build()
            .map_err(|e| format!("starting ONNX Runtime from {}: {e}", path.display()))
    })
    .as_ref()
    .map_err(|e| OnboardError::Runtime(e.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_versioned_libraries_and_names_the_fix_when_absent() -> std::io::Result<()> {
        let dir = std::env::temp_dir().join(format!("nines-ort-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        assert_eq!(library_in(&dir), None);
        std::fs::write(dir.join("libonnxruntime.so.1.17.0"), b"")?;
        std::fs::write(dir.join("libonnxruntime.so.1.31.1"), b"")?;
        assert_eq!(library_in(&dir), Some(dir.join("libonnxruntime.so.1.31.1")));
        std::fs::remove_dir_all(&dir)?;
        assert!(INSTALL_HINT.contains("scripts/setup.sh") && INSTALL_HINT.contains(DYLIB_ENV));
        Ok(())
    }
}
