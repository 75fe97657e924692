//! Shared by the AFL++ targets: a drive written to a per-process file, since
//! the drive reader and recovery work on paths (as the CLI does).

use std::path::PathBuf;

/// A file under the fastest temporary folder, named for this process.
#[must_use]
pub fn scratch(name: &str) -> PathBuf {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    dir.join(format!("nines-fuzz-{}-{name}", std::process::id()))
}
