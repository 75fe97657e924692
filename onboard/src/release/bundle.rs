//! The release bundle: one file that carries a whole runtime release, signed
//! as a whole so that any changed byte is refused.
//!
//! Layout: the magic line `nines-bundle 1\n`, the signer's ed25519 public
//! key (32 bytes), the payload (a zstd-compressed tar whose first entry is
//! `manifest.json` and whose other entries are exactly the manifest's
//! files, in its order), then the signature (64 bytes) over everything
//! before it; the manifest adds the SHA-256
//! of every file, checked again when a release is unpacked and by
//! `nines-onboard status` on the installed tree.
//!
//! A bundle is read whole into memory (a release is tens of MB): what is
//! verified is what gets unpacked, with no second read of the file.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::keys::fingerprint;
use crate::{OnboardError, Result};

/// The first bytes of every bundle.
pub const MAGIC: &[u8] = b"nines-bundle 1\n";
/// The manifest's format version.
pub const FORMAT: u32 = 1;
/// The manifest's name inside the payload and in an installed release.
pub const MANIFEST: &str = "manifest.json";
/// The magic line and the signer's key, before the payload.
const HEADER: usize = MAGIC.len() + 32;
/// The signature, after the payload.
const SIGNATURE: usize = 64;
/// The most bytes of manifest read from a bundle not yet verified.
const MAX_MANIFEST: u64 = 16 << 20;

/// What a release is: written by `nines bundle`, signed with the bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// The release id, `<UTC time>-<digest prefix>`: sortable by time, unique by content.
    pub id: String,
    /// When the bundle was made (RFC 3339, UTC).
    pub created: String,
    /// The Rust target triple the runtime was built for.
    pub target: String,
    /// The nines version that built it.
    pub nines_version: String,
    /// The cargo features the runtime was built with.
    pub features: Vec<String>,
    /// The newest glibc symbol version the runtime needs, e.g. "2.34".
    pub glibc_needed: String,
    /// The shared libraries the runtime's ELF needs (its DT_NEEDED
    /// entries, e.g. "libopencv_videoio.so.406"), read from the binary:
    /// the robot must have every one. Empty in bundles made before it was
    /// recorded.
    #[serde(default)]
    pub needed_libraries: Vec<String>,
    /// The ONNX Runtime the release runs on.
    pub onnxruntime: OnnxRuntime,
    /// The network.
    pub model: ModelEntry,
    /// The vehicle configuration, relative to the release.
    pub config: String,
    /// The systemd unit.
    pub service: ServiceEntry,
    /// Every file of the release, in payload order.
    pub files: Vec<FileEntry>,
}

/// Which ONNX Runtime library the release loads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxRuntime {
    /// The bundled library, relative to the release (`lib/...`), if any.
    pub file: Option<String>,
    /// Its version, e.g. "1.31.1", when bundled.
    pub version: Option<String>,
    /// The library the target provides (JetPack's GPU build), when not bundled.
    pub provided_by_target: Option<PathBuf>,
}

/// The model in the release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// The ONNX file, relative to the release.
    pub file: String,
    /// `sha256:<hex>` of the ONNX file, as the runtime reports it.
    pub digest: String,
    /// The model card from the file's metadata (contract, training, export).
    pub card: serde_json::Value,
}

/// The systemd unit shipped with the release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceEntry {
    /// The unit's name, e.g. `nines.service`.
    pub unit: String,
    /// The unit template, relative to the release; `@ROOT@` stands for the install root.
    pub template: String,
    /// `WatchdogSec` of the unit.
    pub watchdog_secs: u32,
}

/// One file of the release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Relative path, `/`-separated, no `..`.
    pub path: String,
    /// Lowercase hex SHA-256.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
    /// Unix permission bits (0o755 for executables, 0o644 otherwise).
    pub mode: u32,
}

impl FileEntry {
    /// The entry for `bytes` at `path`.
    #[must_use]
    pub fn of(path: &str, bytes: &[u8], mode: u32) -> Self {
        Self { path: path.to_owned(), sha256: sha256_hex(bytes), size: bytes.len() as u64, mode }
    }
}

/// Lowercase hex SHA-256 of `bytes`.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Writes a bundle: `files` (path, bytes) must be exactly the manifest's
/// files, in its order.
///
/// # Panics
/// Never: a manifest always serialises.
pub fn write(out: &Path, manifest: &Manifest, files: &[(String, Vec<u8>)], key: &SigningKey) -> Result<()> {
    check_manifest(manifest, files.iter().map(|(p, b)| (p.as_str(), b.as_slice())), out)?;
    let manifest_json = serde_json::to_vec_pretty(manifest).expect("a manifest serialises");
    let mut tar = tar::Builder::new(Vec::new());
    let mut append = |path: &str, bytes: &[u8], mode: u32| {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(mode);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, path, bytes)
    };
    append(MANIFEST, &manifest_json, 0o644)
        .map_err(|e| OnboardError::release(out, format!("packing: {e}")))?;
    for ((path, bytes), entry) in files.iter().zip(&manifest.files) {
        append(path, bytes, entry.mode)
            .map_err(|e| OnboardError::release(out, format!("packing {path}: {e}")))?;
    }
    let tar = tar.into_inner().map_err(|e| OnboardError::release(out, format!("packing: {e}")))?;
    let payload =
        zstd::bulk::compress(&tar, 9).map_err(|e| OnboardError::release(out, format!("compressing: {e}")))?;
    let mut bytes = Vec::with_capacity(HEADER + payload.len() + SIGNATURE);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(key.verifying_key().as_bytes());
    bytes.extend_from_slice(&payload);
    // Everything before it is signed, so it is one contiguous slice to check.
    let signature = key.sign(&bytes);
    bytes.extend_from_slice(&signature.to_bytes());
    // Written next to the target and renamed, so a bundle on disk is always whole.
    let part = out.with_extension("part");
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&part)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&part, out)
    };
    write().map_err(|e| OnboardError::release(out, format!("writing: {e}")))
}

/// A bundle whose signature and files have been checked.
#[derive(Debug)]
pub struct Verified {
    /// The manifest.
    pub manifest: Manifest,
    /// The manifest as stored (what an installed release keeps).
    pub manifest_json: Vec<u8>,
    /// The files, in manifest order.
    pub files: Vec<Vec<u8>>,
    /// Fingerprint of the key that signed it.
    pub signer: String,
}

/// Reads the manifest without checking the signature or the files: for
/// showing what a bundle claims to be before it is verified where it
/// matters (on the target).
pub fn peek(path: &Path) -> Result<Manifest> {
    let bytes = read(path)?;
    let (_, signed, _) = split(path, &bytes)?;
    let payload = &signed[HEADER..];
    let damaged = |e: std::io::Error| OnboardError::release(path, format!("the bundle is damaged: {e}"));
    let decoder = zstd::stream::Decoder::new(payload).map_err(damaged)?;
    let mut archive = tar::Archive::new(decoder);
    let mut entries = archive.entries().map_err(damaged)?;
    let mut first =
        entries.next().ok_or_else(|| OnboardError::release(path, "the bundle is empty"))?.map_err(damaged)?;
    // Bounded: a manifest is a few kB, and this bundle is not verified yet.
    let mut json = Vec::new();
    (&mut first).take(MAX_MANIFEST + 1).read_to_end(&mut json).map_err(damaged)?;
    if json.len() as u64 > MAX_MANIFEST {
        return Err(OnboardError::release(
            path,
            format!("{MANIFEST} is over {MAX_MANIFEST} bytes: the bundle is damaged"),
        ));
    }
    serde_json::from_slice(&json).map_err(|e| OnboardError::release(path, format!("{MANIFEST}: {e}")))
}

/// Reads `path`, checks its signature against `trusted`, then every file
/// against the manifest. Nothing is written.
pub fn verify(path: &Path, trusted: &VerifyingKey) -> Result<Verified> {
    let bytes = read(path)?;
    let (public, signed, signature) = split(path, &bytes)?;
    let signer = VerifyingKey::from_bytes(public).map_or_else(|_| "invalid".into(), |k| fingerprint(&k));
    if public != trusted.as_bytes() {
        return Err(OnboardError::release(
            path,
            format!(
                "signed by key {signer}, but the trusted key is {}: sign it with the fleet key (`nines bundle --key`), \
                 or install that key's .pub on the target",
                fingerprint(trusted)
            ),
        ));
    }
    trusted.verify_strict(signed, &Signature::from_bytes(signature)).map_err(|_| {
        OnboardError::release(path, "the signature does not match the bundle: it was changed after signing, or is damaged; refusing it")
    })?;
    let (manifest, manifest_json, files) = unpack_payload(path, &signed[HEADER..])?;
    Ok(Verified { manifest, manifest_json, files, signer })
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| OnboardError::release(path, format!("cannot read the bundle: {e}")))
}

/// The signer's key, the signed part (header and payload), and the signature.
fn split<'a>(path: &Path, bytes: &'a [u8]) -> Result<(&'a [u8; 32], &'a [u8], &'a [u8; 64])> {
    if !bytes.starts_with(MAGIC) {
        return Err(OnboardError::release(
            path,
            "not a nines bundle (no `nines-bundle 1` header); make one with `nines bundle`",
        ));
    }
    if bytes.len() < HEADER + SIGNATURE {
        return Err(OnboardError::release(path, "the bundle is cut short: copy it again"));
    }
    let (signed, signature) = bytes.split_at(bytes.len() - SIGNATURE);
    let public = signed[MAGIC.len()..HEADER].try_into().expect("32 bytes");
    Ok((public, signed, signature.try_into().expect("64 bytes")))
}

type Unpacked = (Manifest, Vec<u8>, Vec<Vec<u8>>);

fn unpack_payload(path: &Path, payload: &[u8]) -> Result<Unpacked> {
    let tar = zstd::stream::decode_all(payload)
        .map_err(|e| OnboardError::release(path, format!("the payload does not decompress: {e}")))?;
    let mut archive = tar::Archive::new(tar.as_slice());
    let mut entries = Vec::new();
    let damaged =
        |e: std::io::Error| OnboardError::release(path, format!("the payload is not a valid archive: {e}"));
    for entry in archive.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(OnboardError::release(path, "the payload holds something other than plain files"));
        }
        let name = entry.path().map_err(damaged)?.to_string_lossy().into_owned();
        let mode = entry.header().mode().map_err(damaged)?;
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(damaged)?;
        entries.push((name, mode, bytes));
    }
    let mut entries = entries.into_iter();
    let Some((name, _, manifest_json)) = entries.next().filter(|(name, _, _)| name == MANIFEST) else {
        return Err(OnboardError::release(path, format!("the payload does not start with {MANIFEST}")));
    };
    debug_assert_eq!(name, MANIFEST);
    let manifest: Manifest = serde_json::from_slice(&manifest_json).map_err(|e| {
        OnboardError::release(
            path,
            format!("{MANIFEST}: {e}; this nines is too old or the bundle is damaged"),
        )
    })?;
    if manifest.format != FORMAT {
        return Err(OnboardError::release(
            path,
            format!(
                "{MANIFEST}: format {} where this runtime reads {FORMAT}; update the installed runtime",
                manifest.format
            ),
        ));
    }
    let entries: Vec<(String, u32, Vec<u8>)> = entries.collect();
    for ((name, mode, _), entry) in entries.iter().zip(&manifest.files) {
        if *name != entry.path || *mode != entry.mode {
            return Err(OnboardError::release(
                path,
                format!("payload entry {name} does not match the manifest's {}", entry.path),
            ));
        }
    }
    check_manifest(&manifest, entries.iter().map(|(p, _, b)| (p.as_str(), b.as_slice())), path)?;
    Ok((manifest, manifest_json, entries.into_iter().map(|(_, _, b)| b).collect()))
}

/// Checks `files` against the manifest: the same paths in the same order,
/// each with its size and SHA-256, and every path a safe relative one.
fn check_manifest<'a>(
    manifest: &Manifest,
    files: impl ExactSizeIterator<Item = (&'a str, &'a [u8])>,
    path: &Path,
) -> Result<()> {
    if files.len() != manifest.files.len() {
        return Err(OnboardError::release(
            path,
            format!("{} files where the manifest lists {}", files.len(), manifest.files.len()),
        ));
    }
    for ((name, bytes), entry) in files.zip(&manifest.files) {
        safe_relative(&entry.path).map_err(|detail| OnboardError::release(path, detail))?;
        if name != entry.path || bytes.len() as u64 != entry.size || sha256_hex(bytes) != entry.sha256 {
            return Err(OnboardError::release(
                path,
                format!("{name} does not match its SHA-256 in the manifest"),
            ));
        }
    }
    Ok(())
}

/// `path` as a relative path with only normal components.
///
/// # Errors
/// When it is empty, absolute, climbs with `..`, or is the manifest's own name.
pub fn safe_relative(path: &str) -> std::result::Result<PathBuf, String> {
    let p = Path::new(path);
    if path.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) || path == MANIFEST {
        return Err(format!("unsafe or reserved path `{path}` in the manifest"));
    }
    Ok(p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(files: &[(String, Vec<u8>)]) -> Manifest {
        Manifest {
            format: FORMAT,
            id: "20261123T000000Z-00000000".into(),
            created: "2026-11-23T00:00:00Z".into(),
            target: "x86_64-unknown-linux-gnu".into(),
            nines_version: "0.1.0".into(),
            features: vec!["zenoh".into()],
            glibc_needed: "2.34".into(),
            needed_libraries: vec!["libc.so.6".into()],
            onnxruntime: OnnxRuntime { file: None, version: None, provided_by_target: None },
            model: ModelEntry {
                file: "model/model.onnx".into(),
                digest: "sha256:00".into(),
                card: serde_json::json!({}),
            },
            config: "config/vehicle.toml".into(),
            service: ServiceEntry {
                unit: "nines.service".into(),
                template: "systemd/nines.service".into(),
                watchdog_secs: 2,
            },
            files: files.iter().map(|(p, b)| FileEntry::of(p, b, 0o644)).collect(),
        }
    }

    #[test]
    fn every_changed_byte_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_bytes(&[7; 32]);
        let files = vec![("a.txt".to_owned(), b"alpha".to_vec()), ("b/c.bin".to_owned(), vec![3; 1000])];
        let out = dir.path().join("b.nines");
        write(&out, &manifest(&files), &files, &key).unwrap();
        let verified = verify(&out, &key.verifying_key()).unwrap();
        assert_eq!(verified.files[1], vec![3; 1000]);
        let bytes = std::fs::read(&out).unwrap();
        let tampered = dir.path().join("t.nines");
        for i in 0..bytes.len() {
            let mut changed = bytes.clone();
            changed[i] ^= 0x20;
            std::fs::write(&tampered, &changed).unwrap();
            assert!(verify(&tampered, &key.verifying_key()).is_err(), "byte {i} changed and still accepted");
        }
        std::fs::write(&tampered, &bytes[..bytes.len() - 1]).unwrap();
        assert!(verify(&tampered, &key.verifying_key()).is_err());
        let other = SigningKey::from_bytes(&[8; 32]);
        let err = verify(&out, &other.verifying_key()).unwrap_err().to_string();
        assert!(err.contains("signed by key"), "{err}");
    }

    #[test]
    fn files_must_match_the_manifest_and_stay_inside_the_release() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_bytes(&[7; 32]);
        let files = vec![("a.txt".to_owned(), b"alpha".to_vec())];
        let mut m = manifest(&files);
        m.files[0].sha256 = sha256_hex(b"beta");
        let err = write(&dir.path().join("x.nines"), &m, &files, &key).unwrap_err().to_string();
        assert!(err.contains("SHA-256"), "{err}");
        for bad in ["../etc/passwd", "/etc/passwd", "a/../../b", "", MANIFEST] {
            let files = vec![(bad.to_owned(), b"x".to_vec())];
            assert!(write(&dir.path().join("x.nines"), &manifest(&files), &files, &key).is_err(), "{bad}");
        }
    }
}
