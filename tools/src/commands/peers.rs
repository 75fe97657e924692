//! Where the peer tools are, from any working folder: the setup script's
//! `.venv` (Python with the MCAP readers and NumPy, the rerun viewer) and
//! the scripts under `scripts/peers`. They live in a nines checkout: the
//! one `$NINES_HOME` names, the working folder or one above it, or the
//! checkout this binary was built from (where `bash scripts/demo.sh` ran
//! the setup script), in that order.

use std::path::{Path, PathBuf};

/// The environment variable naming the checkout explicitly.
pub const HOME_ENV: &str = "NINES_HOME";

/// The folders that may be a checkout, in the order they are tried.
fn candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(home) = std::env::var_os(HOME_ENV) {
        out.push(PathBuf::from(home));
    }
    if let Ok(cwd) = std::env::current_dir() {
        out.extend(cwd.ancestors().map(Path::to_path_buf));
    }
    // tools/ of the checkout this binary was built from.
    if let Some(built) = Path::new(env!("CARGO_MANIFEST_DIR")).parent() {
        out.push(built.to_path_buf());
    }
    out
}

/// The first checkout holding `relative` (e.g. `.venv/bin/python`), and
/// the file there; or an error saying where it looked and how to fix it.
pub fn find(relative: &str) -> anyhow::Result<PathBuf> {
    let candidates = candidates();
    if let Some(found) = candidates
        .iter()
        .filter(|dir| dir.join("scripts/setup.sh").is_file())
        .map(|dir| dir.join(relative))
        .find(|path| path.exists())
    {
        return Ok(found);
    }
    let looked: Vec<String> = candidates.iter().map(|d| d.join(relative).display().to_string()).collect();
    anyhow::bail!(
        "{relative} not found in a nines checkout (looked at {}); run `bash scripts/setup.sh` in the checkout, \
         or set {HOME_ENV} to it",
        looked.join(", ")
    )
}

/// The venv's Python, unless the user gave one.
pub fn python(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    given.map_or_else(|| find(".venv/bin/python"), |p| Ok(p.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checkout_this_binary_was_built_from_is_found_from_another_folder() {
        // The test binary's checkout has scripts/peers; a lookup that only
        // tried the working folder would fail from /.
        let script = find("scripts/peers/bench_read.py").unwrap();
        assert!(script.is_file(), "{}", script.display());
        let err = find("scripts/peers/no_such_script.py").unwrap_err().to_string();
        assert!(err.contains("no_such_script.py not found") && err.contains(HOME_ENV), "{err}");
    }
}
