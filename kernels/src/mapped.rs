//! Read-only memory-mapped files: label shards are far larger than the
//! batches read from them, so training maps them and lets the page cache
//! keep what is hot. Mapping a file is an unsafe operation, which is why it
//! lives in this crate (the one place nines allows unsafe code).

use std::fs::File;
use std::path::{Path, PathBuf};

/// A file mapped read-only into memory.
#[derive(Debug)]
pub struct MappedFile {
    path: PathBuf,
    map: memmap2::Mmap,
}

impl MappedFile {
    /// Maps `path` read-only.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = File::open(path)?;
        // SAFETY: the mapping is read-only and nines never rewrites a file in
        // place (shards are written to a temporary name and renamed), so the
        // bytes cannot change under us from within nines. Another program
        // truncating the file while it is mapped would end the process with
        // SIGBUS, which is the documented limit of memory mapping.
        #[expect(unsafe_code, reason = "memory mapping a file is unsafe in memmap2")]
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(Self { path: path.to_path_buf(), map })
    }

    /// The file's bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// The file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_bytes_of_a_file() -> std::io::Result<()> {
        let dir = std::env::temp_dir().join(format!("nines-mapped-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("f.bin");
        std::fs::write(&path, [1u8, 2, 3, 250])?;
        let mapped = MappedFile::open(&path)?;
        assert_eq!(mapped.bytes(), &[1, 2, 3, 250]);
        assert!(MappedFile::open(&dir.join("absent")).is_err());
        std::fs::remove_dir_all(&dir)
    }
}
