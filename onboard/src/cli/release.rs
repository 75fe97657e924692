//! `nines-onboard verify | status | install | self-test`: the runtime as its
//! own installer on the robot (docs/FLASH.md).

use std::path::Path;
use std::process::ExitCode;

use super::Tool;
use crate::config::Config;
use crate::release::health::Health;
use crate::release::install::{self, InstallOptions};
use crate::release::{bundle, keys, status};

/// Runs a release tool.
pub(super) fn run(tool: &Tool) -> crate::Result<ExitCode> {
    match tool {
        Tool::Verify { bundle: path, pubkey, json } => {
            let verified = bundle::verify(path, &keys::read_verifying_key(pubkey)?)?;
            let m = &verified.manifest;
            if *json {
                println!("{}", serde_json::to_string_pretty(m).expect("a manifest serialises"));
            } else {
                println!(
                    "{}: signature good (key {}), {} files intact",
                    path.display(),
                    verified.signer,
                    m.files.len()
                );
                println!(
                    "  release {} for {} (built {}, nines {})",
                    m.id, m.target, m.created, m.nines_version
                );
                println!("  model {} {}", m.model.file, m.model.digest);
                println!("  glibc needed {}, features {}", m.glibc_needed, m.features.join(","));
                if !m.needed_libraries.is_empty() {
                    println!("  needs the libraries {}", m.needed_libraries.join(", "));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Tool::Status { root, json } => {
            let status = status::status(root)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&status).expect("a status serialises"));
            } else {
                print_status(&status);
            }
            let healthy = status.current.as_ref().is_some_and(|c| c.problems.is_empty());
            Ok(if healthy { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Tool::Install { bundle, root, pubkey, service, runner, keep, health_timeout } => {
            let health = Health::from_flags(service, runner.as_deref(), *health_timeout, false);
            let options = InstallOptions { pubkey: pubkey.clone(), health, keep: *keep };
            let report = install::install(bundle, root, &options)?;
            println!("{}", serde_json::to_string(&report).expect("a report serialises"));
            eprintln!("{}", report.summary());
            Ok(if report.succeeded() { ExitCode::SUCCESS } else { ExitCode::from(2) })
        }
        Tool::SelfTest { config, model } => self_test(config, model),
    }
}

/// `nines-onboard self-test`: load the model with the vehicle config, one inference.
fn self_test(config: &Path, model: &Path) -> crate::Result<ExitCode> {
    let config = Config::load_for_runtime(Some(config))?;
    let start = std::time::Instant::now();
    let mut net = crate::inference::Inference::load(model, &config.model, &config.base_dir)?;
    net.image_mut().fill(0.5);
    let finite = net.run(0.0, |o| o.depth.iter().chain(o.plan).chain(o.lead).all(|v| v.is_finite()))?;
    let report = serde_json::json!({
        "model": model.display().to_string(),
        "digest": net.digest(),
        "provider": net.provider(),
        "finite": finite,
        "seconds": start.elapsed().as_secs_f64(),
    });
    println!("{report}");
    if finite {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: {}: the model's outputs are not finite", model.display());
        Ok(ExitCode::FAILURE)
    }
}

fn print_status(status: &status::Status) {
    println!("root {}", status.root.display());
    println!("  fleet key {}", status.fleet_key.as_deref().unwrap_or("none: not provisioned"));
    match &status.current {
        Some(c) => {
            println!("  current {} ({}, built {}, nines {})", c.id, c.target, c.created, c.nines_version);
            println!("    model {}, onnxruntime {}", c.model_digest, c.onnxruntime);
            if c.problems.is_empty() {
                println!("    files intact");
            }
            for p in &c.problems {
                println!("    CHANGED {p}");
            }
        }
        None => println!("  current: none installed"),
    }
    println!(
        "  releases: {}",
        if status.releases.is_empty() { "none".into() } else { status.releases.join(", ") }
    );
    if let Some(e) = &status.last_event {
        println!("  last event: {e}");
    }
}
