//! The `nines-onboard` binary's release tools on bad input: clear refusals,
//! the right exit codes. (This test also makes `cargo test` build the
//! binary, which the flash tests in `tools/tests` install and run.)

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use std::process::Command;

fn onboard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nines-onboard"))
}

#[test]
fn release_tools_refuse_bad_input_with_the_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("robot");
    std::fs::create_dir(&root).unwrap();
    // Nothing installed: status says so and exits 1.
    let out = onboard().arg("status").arg("--root").arg(&root).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("current: none installed"));
    // Not a bundle, and no key: each refusal names the file and the fix.
    let junk = dir.path().join("junk.nines");
    std::fs::write(&junk, b"not a bundle").unwrap();
    let (secret, public) = nines_onboard::release::keys::generate(&dir.path().join("fleet")).unwrap();
    let out = onboard().arg("verify").arg(&junk).arg("--pubkey").arg(&public).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("junk.nines") && err.contains("nines bundle"), "{err}");
    let out = onboard().arg("install").arg(&junk).arg("--root").arg(&root).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("fleet.pub") && err.contains("nines keygen"), "{err}");
    // A secret key is not a public key.
    let out = onboard().arg("verify").arg(&junk).arg("--pubkey").arg(&secret).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an ed25519 public key"));
    assert!(std::fs::read_dir(&root).unwrap().next().is_none(), "a refused install wrote to the root");
}
