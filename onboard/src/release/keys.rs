//! Fleet signing keys: ed25519, stored as PEM the way OpenSSL writes them
//! (PKCS#8 for the secret key, SubjectPublicKeyInfo for the public one), so
//! `openssl pkey -in fleet.key -pubout` agrees with `fleet.pub`.

use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, KeypairBytes,
};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::{OnboardError, Result};

/// Writes a new key pair: `PREFIX.key` (secret, mode 0600) and `PREFIX.pub`.
/// Refuses to overwrite either file.
pub fn generate(prefix: &Path) -> Result<(PathBuf, PathBuf)> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| OnboardError::release(prefix, format!("the system's random source failed: {e}")))?;
    let key = SigningKey::from_bytes(&seed);
    let secret = PathBuf::from(format!("{}.key", prefix.display()));
    let public = PathBuf::from(format!("{}.pub", prefix.display()));
    for path in [&secret, &public] {
        if path.exists() {
            return Err(OnboardError::release(
                path,
                "already exists; a fleet key is never overwritten: choose another --out",
            ));
        }
    }
    // PKCS#8 v1 (no embedded public key): the form OpenSSL 3.0 reads and writes.
    let secret_pem = KeypairBytes { secret_key: key.to_bytes(), public_key: None }
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| OnboardError::release(&secret, format!("encoding the secret key: {e}")))?;
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| OnboardError::release(&public, format!("encoding the public key: {e}")))?;
    write_new(&secret, secret_pem.as_bytes(), 0o600)?;
    write_new(&public, public_pem.as_bytes(), 0o644)?;
    Ok((secret, public))
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| OnboardError::release(path, format!("cannot create: {e}")))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| OnboardError::release(path, format!("writing: {e}")))
}

/// Reads a secret key written by [`generate`] (or `openssl genpkey -algorithm ed25519`).
pub fn read_signing_key(path: &Path) -> Result<SigningKey> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        OnboardError::release(
            path,
            format!("cannot read the signing key: {e}; make one with `nines keygen --out fleet`"),
        )
    })?;
    SigningKey::from_pkcs8_pem(&text).map_err(|e| {
        OnboardError::release(
            path,
            format!("not an ed25519 secret key in PKCS#8 PEM ({e}); give the .key that `nines keygen` wrote"),
        )
    })
}

/// Reads a public key written by [`generate`] (or `openssl pkey -pubout`).
pub fn read_verifying_key(path: &Path) -> Result<VerifyingKey> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        OnboardError::release(
            path,
            format!("cannot read the fleet public key: {e}; give the .pub that `nines keygen` wrote"),
        )
    })?;
    VerifyingKey::from_public_key_pem(&text).map_err(|e| {
        OnboardError::release(
            path,
            format!("not an ed25519 public key in PEM ({e}); give the .pub that `nines keygen` wrote"),
        )
    })
}

/// A short name for a public key: the first 16 hex digits of its SHA-256.
#[must_use]
pub fn fingerprint(key: &VerifyingKey) -> String {
    nines_datasets::contract::short_hex(&Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_are_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("fleet");
        let (secret, public) = generate(&prefix).unwrap();
        let key = read_signing_key(&secret).unwrap();
        assert_eq!(read_verifying_key(&public).unwrap(), key.verifying_key());
        assert_eq!(std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777, 0o600);
        let again = generate(&prefix).unwrap_err().to_string();
        assert!(again.contains("never overwritten"), "{again}");
        // The public key is not a secret key, and the other way round.
        assert!(read_signing_key(&public).unwrap_err().to_string().contains("PKCS#8"));
        assert!(read_verifying_key(&secret).is_err());
    }
}
