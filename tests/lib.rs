//! Helpers for the end-to-end tests in `tests/tests`: where the workspace
//! and the Python peer tools are.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Root of the workspace.
#[must_use]
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Python with the peer tools: `$NINES_PYTHON`, else the setup script's
/// `.venv`. Panics with the fix when neither exists, so the peer checks
/// can never be skipped by accident.
///
/// # Panics
/// When the peer Python is missing.
#[must_use]
pub fn peer_python() -> PathBuf {
    let python = std::env::var_os("NINES_PYTHON")
        .map_or_else(|| workspace_root().join(".venv/bin/python"), PathBuf::from);
    assert!(
        python.exists(),
        "{} not found: run scripts/setup.sh (or set NINES_PYTHON) to install the Python peer tools",
        python.display()
    );
    python
}

/// The Python with PyTorch (the LibTorch tier, ignored in the test
/// command): `$NINES_TORCH_PYTHON`, else the venv `scripts/device/build.sh`
/// makes, `~/.cache/nines/torch-2.11.0`. Panics with the fix when missing.
///
/// # Panics
/// When that Python is missing.
#[must_use]
pub fn torch_python() -> PathBuf {
    let python = std::env::var_os("NINES_TORCH_PYTHON").map_or_else(
        || {
            let home = std::env::var_os("HOME").unwrap_or_default();
            Path::new(&home).join(".cache/nines/torch-2.11.0/bin/python")
        },
        PathBuf::from,
    );
    assert!(
        python.exists(),
        "{} not found: run `bash scripts/device/build.sh` (it installs torch==2.11.0 in that venv), \
         or set NINES_TORCH_PYTHON to a Python with torch",
        python.display()
    );
    python
}

/// Runs a peer script from `scripts/peers` and returns its stdout, panicking
/// with its stderr if it fails.
///
/// # Panics
/// When the script cannot run or exits with an error.
#[must_use]
pub fn run_peer(script: &str, args: &[&Path]) -> String {
    let output = Command::new(peer_python())
        .arg(workspace_root().join("scripts/peers").join(script))
        .args(args)
        .output()
        .expect("running the peer python");
    assert!(output.status.success(), "{script} failed:\n{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// An empty folder for a fixture that every test of one test binary shares
/// (held in a `static`, so never dropped): `<target tmp>/<name>`, emptied
/// first. A `TempDir` in a `static` would leave a copy behind on every run;
/// this keeps one, replaced by the next run.
///
/// # Panics
/// When the folder cannot be emptied or created.
#[must_use]
pub fn shared_fixture_dir(target_tmp: &str, name: &str) -> PathBuf {
    let dir = Path::new(target_tmp).join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("emptying {}: {e}", dir.display()));
    }
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

/// The proptest settings of the fuzz targets: 96 cases per target in the
/// test command, `NINES_FUZZ_CASES` for longer runs; no regression files.
#[must_use]
pub fn fuzz_config() -> proptest::test_runner::Config {
    let cases = std::env::var("NINES_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(96);
    proptest::test_runner::Config { cases, failure_persistence: None, ..Default::default() }
}
