//! Property-based fuzz targets for release bundles: the bundle header and
//! payload as the robot reads them (`peek`, `verify`), payloads that were
//! damaged before signing (a faulty build signed with the fleet key), the
//! installed manifest as `nines-onboard status` reads it, and the ELF that
//! `nines bundle` reads the architecture, glibc floor and needed libraries
//! from. Seeded with a real bundle and a real executable; every input is
//! read or refused with an error naming the file, never a panic, and no
//! changed byte of a signed bundle is ever accepted.
//!
//! `NINES_FUZZ_CASES=20000 cargo test -p nines-tests --test fuzz_bundle`
//! runs each target for longer than the test command does.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, SigningKey};
use nines_onboard::release::bundle::{self, FileEntry, Manifest, ModelEntry, OnnxRuntime, ServiceEntry};
use nines_onboard::release::status;
use nines_tests::fuzz_config;
use proptest::prelude::*;

/// The magic line and the signer's key.
const HEADER: usize = bundle::MAGIC.len() + 32;
const SIGNATURE: usize = 64;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[11; 32])
}

/// A bundle as `nines bundle` writes it: a runtime, a model, a config and a
/// unit, with a manifest naming them.
struct Seed {
    dir: tempfile::TempDir,
    bytes: Vec<u8>,
    files: Vec<(String, Vec<u8>)>,
    manifest: Manifest,
}

fn seed() -> &'static Seed {
    static SEED: std::sync::OnceLock<Seed> = std::sync::OnceLock::new();
    SEED.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let files = vec![
            ("bin/nines-onboard".to_owned(), std::fs::read(elf_seed()).unwrap()),
            ("model/model.onnx".to_owned(), vec![8; 2000]),
            ("config/vehicle.toml".to_owned(), b"[vehicle]\nname = \"fuzz\"\n".to_vec()),
            ("systemd/nines.service".to_owned(), b"[Service]\nExecStart=@ROOT@/bin/nines-onboard\n".to_vec()),
        ];
        let manifest = Manifest {
            format: bundle::FORMAT,
            id: "20261207T000000Z-0000000f".into(),
            created: "2026-12-07T00:00:00Z".into(),
            target: "x86_64-unknown-linux-gnu".into(),
            nines_version: "0.1.0".into(),
            features: vec!["cli".into(), "zenoh".into()],
            glibc_needed: "2.34".into(),
            needed_libraries: vec!["libc.so.6".into()],
            onnxruntime: OnnxRuntime {
                file: None,
                version: None,
                provided_by_target: Some("/usr/lib".into()),
            },
            model: ModelEntry {
                file: "model/model.onnx".into(),
                digest: "sha256:00".into(),
                card: serde_json::json!({"contract": {"version": 1}}),
            },
            config: "config/vehicle.toml".into(),
            service: ServiceEntry {
                unit: "nines.service".into(),
                template: "systemd/nines.service".into(),
                watchdog_secs: 2,
            },
            files: files
                .iter()
                .map(|(p, b)| FileEntry::of(p, b, if p.starts_with("bin/") { 0o755 } else { 0o644 }))
                .collect(),
        };
        let out = dir.path().join("seed.nines");
        bundle::write(&out, &manifest, &files, &key()).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        Seed { dir, bytes, files, manifest }
    })
}

/// A small real executable of this machine, to seed the ELF target.
fn elf_seed() -> PathBuf {
    ["/bin/true", "/usr/bin/true", "/usr/bin/env"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| std::env::current_exe().unwrap())
}

/// `bytes` with bytes flipped (positions as fractions of `range`), then cut
/// to a fraction of its length when `cut` is below 1.
fn damage(bytes: &[u8], range: std::ops::Range<usize>, flips: &[(f64, u8)], cut: f64) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let span = range.end.saturating_sub(range.start);
    for &(at, x) in flips {
        if span > 0 {
            out[range.start + ((span - 1) as f64 * at) as usize] ^= x;
        }
    }
    if cut < 1.0 {
        out.truncate((out.len() as f64 * cut) as usize);
    }
    out
}

fn flips() -> impl Strategy<Value = Vec<(f64, u8)>> {
    proptest::collection::vec((0.0f64..1.0, 1u8..=255), 1..6)
}

/// Mostly whole files; sometimes cut short.
fn cut() -> impl Strategy<Value = f64> {
    prop_oneof![4 => Just(1.0), 1 => 0.0f64..1.0]
}

fn names(err: &impl std::fmt::Display, path: &Path) -> bool {
    err.to_string().contains(&path.display().to_string())
}

proptest! {
    #![proptest_config(fuzz_config())]

    /// Any byte changed or cut anywhere: `peek` reads a manifest or names
    /// the file, and `verify` refuses every changed bundle.
    #[test]
    fn damaged_bundles_are_refused(flips in flips(), cut in cut(), header in any::<bool>()) {
        let seed = seed();
        let range = if header { 0..HEADER + 64 } else { 0..seed.bytes.len() };
        let bytes = damage(&seed.bytes, range, &flips, cut);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("damaged.nines");
        std::fs::write(&path, &bytes).unwrap();
        if let Err(e) = bundle::peek(&path) {
            prop_assert!(names(&e, &path), "{e}");
        }
        let verified = bundle::verify(&path, &key().verifying_key());
        if bytes == seed.bytes {
            prop_assert!(verified.is_ok());
        } else {
            match verified {
                Ok(_) => prop_assert!(false, "a changed bundle was accepted"),
                Err(e) => prop_assert!(names(&e, &path), "{e}"),
            }
        }
    }

    /// The payload damaged before signing, as a faulty build signed with the
    /// fleet key would be: the signature holds, so what guards the robot is
    /// the payload check. Accepted only with the very files of the seed.
    #[test]
    fn payloads_damaged_before_signing_are_refused(flips in flips(), cut in cut()) {
        let seed = seed();
        let payload_end = seed.bytes.len() - SIGNATURE;
        let mut signed = damage(&seed.bytes[..payload_end], HEADER..payload_end, &flips, 1.0);
        signed.truncate(HEADER + ((signed.len() - HEADER) as f64 * cut) as usize);
        let signature = key().sign(&signed);
        signed.extend_from_slice(&signature.to_bytes());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resigned.nines");
        std::fs::write(&path, &signed).unwrap();
        if let Err(e) = bundle::peek(&path) {
            prop_assert!(names(&e, &path), "{e}");
        }
        match bundle::verify(&path, &key().verifying_key()) {
            Ok(verified) => {
                let files: Vec<&Vec<u8>> = seed.files.iter().map(|(_, b)| b).collect();
                prop_assert_eq!(verified.files.iter().collect::<Vec<_>>(), files);
                prop_assert_eq!(&verified.manifest.files, &seed.manifest.files);
            }
            Err(e) => prop_assert!(names(&e, &path), "{e}"),
        }
    }

    /// An installed manifest edited on the robot: `status` reads it or names
    /// it, and never reads a file outside the release.
    #[test]
    fn installed_manifests_are_read_or_refused(flips in flips(), cut in cut(), escape in 0usize..4) {
        let seed = seed();
        let mut manifest = seed.manifest.clone();
        manifest.files[0].path = ["bin/nines-onboard", "../../etc/hostname", "/etc/hostname", "a/../../b"][escape].into();
        let json = serde_json::to_vec_pretty(&manifest).unwrap();
        let text = damage(&json, 0..json.len(), &flips, cut);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(bundle::MANIFEST), &text).unwrap();
        match status::read_manifest(dir.path()) {
            Ok(read) => {
                let problems = status::intact(dir.path(), &read);
                for entry in &read.files {
                    if bundle::safe_relative(&entry.path).is_err() {
                        prop_assert!(
                            problems.iter().any(|p| p.contains(&entry.path) && p.contains("outside")),
                            "{:?} {problems:?}", entry.path
                        );
                    }
                }
            }
            Err(e) => prop_assert!(e.to_string().contains(bundle::MANIFEST), "{e}"),
        }
    }

    /// The runtime binary `nines bundle` reads: the architecture and glibc
    /// floor (`check_elf`) and the needed libraries (DT_NEEDED), from a real
    /// executable with its headers and tables damaged.
    #[test]
    fn elf_headers_are_read_or_refused(flips in flips(), cut in cut(), part in 0usize..3) {
        let path = elf_seed();
        let bytes = std::fs::read(&path).unwrap();
        // The ELF header and program headers, the section headers (at the
        // end), or anywhere.
        let range = match part {
            0 => 0..bytes.len().min(1024),
            1 => bytes.len().saturating_sub(4096)..bytes.len(),
            _ => 0..bytes.len(),
        };
        let damaged = damage(&bytes, range, &flips, cut);
        if let Err(e) = nines_tools::check_elf(&path, &damaged, std::env::consts::ARCH) {
            prop_assert!(names(&e, &path), "{e}");
        }
        if let Err(e) = nines_tools::needed_libraries(&path, &damaged) {
            prop_assert!(names(&e, &path), "{e}");
        }
    }
}

/// The seed itself reads back whole, so the targets start from a valid bundle.
#[test]
fn the_seed_bundle_verifies() {
    let seed = seed();
    let verified = bundle::verify(&seed.dir.path().join("seed.nines"), &key().verifying_key()).unwrap();
    assert_eq!(verified.manifest, seed.manifest);
    let libraries = nines_tools::needed_libraries(&elf_seed(), &std::fs::read(elf_seed()).unwrap());
    assert!(libraries.unwrap().iter().any(|l| l.starts_with("libc.so")), "a dynamic executable needs libc");
}
