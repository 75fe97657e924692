//! `nines keygen` and `nines bundle`: the fleet's signing key, and a signed
//! release of the onboard runtime for one target (see docs/FLASH.md).
//!
//! A bundle holds the runtime cross-compiled for the target (built here
//! with cargo, or given with `--binary`), the ONNX Runtime library from the
//! PyPI wheel for that architecture (unless the vehicle config names the
//! target's own), the model, the vehicle config, a systemd unit and the
//! manifest, all signed with the fleet key.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use clap::Args;
use nines_onboard::config::Config;
use nines_onboard::release::bundle::{self, FileEntry, Manifest, ModelEntry, OnnxRuntime, ServiceEntry};
use nines_onboard::release::keys;
use sha2::{Digest, Sha256};

/// `nines keygen` arguments.
#[derive(Debug, Clone, Args)]
pub struct KeygenArgs {
    /// Writes PREFIX.key (the secret: keep it on the build machine, mode 0600)
    /// and PREFIX.pub (install it on every robot as /opt/nines/keys/fleet.pub).
    #[arg(long)]
    pub out: PathBuf,
}

/// `nines keygen`.
pub fn keygen(args: &KeygenArgs) -> anyhow::Result<()> {
    let (secret, public) = keys::generate(&args.out)?;
    let fingerprint = keys::fingerprint(&keys::read_verifying_key(&public)?);
    println!("wrote {} (secret, 0600) and {} (key {fingerprint})", secret.display(), public.display());
    Ok(())
}

/// The newest glibc JetPack 6 (Ubuntu 22.04) has: a runtime needing more does not start there.
pub const GLIBC_FLOOR: (u32, u32) = (2, 35);

/// `nines bundle` arguments.
#[derive(Debug, Clone, Args)]
pub struct BundleArgs {
    /// The ONNX model (`nines export` wrote it, with its model card).
    #[arg(long)]
    pub model: PathBuf,
    /// The vehicle configuration the robot runs with.
    #[arg(long)]
    pub config: PathBuf,
    /// Rust target triple of the robot: aarch64-unknown-linux-gnu (Jetson)
    /// or x86_64-unknown-linux-gnu.
    #[arg(long, default_value = host_target())]
    pub target: String,
    /// The fleet's secret key (`nines keygen`).
    #[arg(long)]
    pub key: PathBuf,
    /// The bundle to write.
    #[arg(long, default_value = "bundle.nines")]
    pub out: PathBuf,
    /// Use this built `nines-onboard` instead of building one (it is still
    /// checked: architecture and glibc).
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// The ONNX Runtime library to carry. Default: the PyPI wheel's for the
    /// target (`.venv` for this machine's architecture; `scripts/setup.sh
    /// --cross` fetches the aarch64 one).
    #[arg(long)]
    pub onnxruntime: Option<PathBuf>,
    /// A target sysroot with OpenCV: build the runtime with cameras through
    /// OpenCV. Without it the runtime takes frames over zenoh (or replays drives).
    #[arg(long)]
    pub opencv_sysroot: Option<PathBuf>,
    /// `WatchdogSec` of the systemd unit: systemd restarts a runtime whose
    /// control loop stops for this long.
    #[arg(long, default_value_t = 2)]
    pub watchdog_sec: u32,
}

const fn host_target() -> &'static str {
    if cfg!(target_arch = "aarch64") { "aarch64-unknown-linux-gnu" } else { "x86_64-unknown-linux-gnu" }
}

fn arch_of(target: &str) -> &str {
    target.split('-').next().unwrap_or(target)
}

/// `nines bundle`.
pub fn bundle(args: &BundleArgs) -> anyhow::Result<()> {
    let arch = arch_of(&args.target);
    if !matches!(arch, "aarch64" | "x86_64") || !args.target.ends_with("-linux-gnu") {
        bail!(
            "--target {}: nines bundles for aarch64-unknown-linux-gnu or x86_64-unknown-linux-gnu",
            args.target
        );
    }
    let signing = keys::read_signing_key(&args.key)?;
    let config = Config::load(&args.config)?;
    let card = nines_offboard::export::read_card(&args.model)?;
    let model_bytes =
        std::fs::read(&args.model).with_context(|| format!("reading {}", args.model.display()))?;
    let config_bytes =
        std::fs::read(&args.config).with_context(|| format!("reading {}", args.config.display()))?;

    let mut features = vec!["cli".to_owned(), "zenoh".to_owned()];
    if args.opencv_sysroot.is_some() {
        features.push("opencv".into());
    }
    let binary = match &args.binary {
        Some(path) => path.clone(),
        None => build_runtime(&args.target, &features, args.opencv_sysroot.as_deref())?,
    };
    let binary_bytes = std::fs::read(&binary).with_context(|| format!("reading {}", binary.display()))?;
    let glibc_needed = check_elf(&binary, &binary_bytes, arch)?;
    // The truth is in the ELF, not in how it was asked to be built: a
    // runtime linked against OpenCV was built with it, whatever the flags.
    let needed_libraries = needed_libraries(&binary, &binary_bytes)?;
    features.retain(|f| f != "opencv");
    if needed_libraries.iter().any(|l| l.starts_with("libopencv_")) {
        features.push("opencv".into());
    }
    check_libraries(&binary, &needed_libraries, config.vehicle.system_libraries.as_deref(), &args.config)?;

    let mut files: Vec<(String, Vec<u8>, u32)> = vec![("bin/nines-onboard".into(), binary_bytes, 0o755)];
    let onnxruntime = if let Some(provided) = &config.model.onnxruntime {
        eprintln!("the target provides ONNX Runtime ({}): none bundled", provided.display());
        OnnxRuntime { file: None, version: None, provided_by_target: Some(provided.clone()) }
    } else {
        let lib = match &args.onnxruntime {
            Some(path) => path.clone(),
            None => default_onnxruntime(arch)?,
        };
        let name = std::fs::canonicalize(&lib)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .with_context(|| format!("{}: no such ONNX Runtime library", lib.display()))?;
        let bytes = std::fs::read(&lib).with_context(|| format!("reading {}", lib.display()))?;
        check_elf(&lib, &bytes, arch)?;
        let version = name.strip_prefix("libonnxruntime.so.").map(str::to_owned);
        let file = format!("lib/{name}");
        files.push((file.clone(), bytes, 0o644));
        OnnxRuntime { file: Some(file), version, provided_by_target: None }
    };
    let model_file = "model/model.onnx".to_owned();
    let config_file = "config/vehicle.toml".to_owned();
    let unit = "nines.service".to_owned();
    let template = format!("systemd/{unit}");
    let unit_text = unit_template(args.watchdog_sec, onnxruntime.provided_by_target.as_deref());
    files.push((model_file.clone(), model_bytes.clone(), 0o644));
    files.push((config_file.clone(), config_bytes, 0o644));
    files.push((template.clone(), unit_text.into_bytes(), 0o644));

    let entries: Vec<FileEntry> = files.iter().map(|(p, b, m)| FileEntry::of(p, b, *m)).collect();
    let now = chrono::Utc::now();
    let content: String = entries.iter().map(|e| e.sha256.as_str()).collect();
    let id = format!("{}-{}", now.format("%Y%m%dT%H%M%SZ"), &bundle::sha256_hex(content.as_bytes())[..8]);
    let manifest = Manifest {
        format: bundle::FORMAT,
        id,
        created: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        target: args.target.clone(),
        nines_version: env!("CARGO_PKG_VERSION").into(),
        features,
        glibc_needed: format!("{}.{}", glibc_needed.0, glibc_needed.1),
        needed_libraries,
        onnxruntime,
        model: ModelEntry {
            file: model_file,
            digest: format!("sha256:{:x}", Sha256::digest(&model_bytes)),
            card: serde_json::to_value(&card)?,
        },
        config: config_file,
        service: ServiceEntry { unit, template, watchdog_secs: args.watchdog_sec },
        files: entries,
    };
    let payload: Vec<(String, Vec<u8>)> = files.into_iter().map(|(p, b, _)| (p, b)).collect();
    bundle::write(&args.out, &manifest, &payload, &signing)?;
    let size = std::fs::metadata(&args.out).map_or(0, |m| m.len());
    println!(
        "wrote {} ({:.1} MB): release {} for {}, model {}, glibc >= {}, signed with key {}",
        args.out.display(),
        size as f64 / 1e6,
        manifest.id,
        manifest.target,
        manifest.model.digest,
        manifest.glibc_needed,
        keys::fingerprint(&signing.verifying_key())
    );
    Ok(())
}

/// The unit the bundle carries; the installer fills in `@ROOT@`.
fn unit_template(watchdog_sec: u32, provided_onnxruntime: Option<&Path>) -> String {
    let env = provided_onnxruntime
        .map_or(String::new(), |p| format!("Environment=ORT_DYLIB_PATH={}\n", p.display()));
    format!(
        "[Unit]\n\
         Description=nines onboard runtime\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=notify\n\
         NotifyAccess=main\n\
         ExecStart=@ROOT@/current/bin/nines-onboard --config @ROOT@/current/config/vehicle.toml \
         --model @ROOT@/current/model/model.onnx\n\
         {env}\
         WatchdogSec={watchdog_sec}\n\
         TimeoutStartSec=60\n\
         Restart=on-failure\n\
         RestartSec=1\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n"
    )
}

/// The ONNX Runtime library from the PyPI wheel for `arch`.
fn default_onnxruntime(arch: &str) -> anyhow::Result<PathBuf> {
    if arch == std::env::consts::ARCH {
        return Ok(nines_onboard::ort_env::library_path()?);
    }
    let dir = cache_dir().join("onnxruntime").join(arch);
    let found = std::fs::read_dir(&dir).ok().and_then(|entries| {
        entries
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("libonnxruntime.so.")))
    });
    found.with_context(|| {
        format!(
            "no {arch} ONNX Runtime in {}: run `bash scripts/setup.sh --cross` (it unpacks the PyPI {arch} wheel there), \
             or pass --onnxruntime",
            dir.display()
        )
    })
}

/// nines' cache (`$XDG_CACHE_HOME/nines` or `~/.cache/nines`).
fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("nines")
}

/// Builds `nines-onboard` for `target` with cargo, in release, and returns the binary.
fn build_runtime(
    target: &str,
    features: &[String],
    opencv_sysroot: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if !checkout.join("Cargo.toml").is_file() {
        bail!("building the runtime needs the nines source checkout; pass a built one with --binary");
    }
    let arch = arch_of(target);
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .current_dir(&checkout)
        .args(["build", "--release", "--locked", "-p", "nines-onboard", "--target", target])
        .args(["--no-default-features", "--features", &features.join(",")])
        .arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped());
    if arch != std::env::consts::ARCH {
        let linker = format!("{arch}-linux-gnu-gcc");
        let var = format!("CARGO_TARGET_{}_LINKER", target.to_uppercase().replace('-', "_"));
        if std::env::var_os(&var).is_none() {
            if Command::new(&linker).arg("--version").output().is_err() {
                bail!(
                    "cross-compiling for {target} needs the linker {linker}: run `bash scripts/setup.sh --cross` \
                     (apt: gcc-{arch}-linux-gnu), or set {var}"
                );
            }
            cargo.env(var, linker);
        }
    }
    if let Some(sysroot) = opencv_sysroot {
        cargo.env("PKG_CONFIG_SYSROOT_DIR", sysroot).env("PKG_CONFIG_ALLOW_CROSS", "1");
    }
    eprintln!("building nines-onboard for {target} (release, features {}) ...", features.join(","));
    let mut child = cargo.spawn().context("running cargo")?;
    let mut executable = None;
    for line in std::io::BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line?;
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        if message["reason"] == "compiler-artifact"
            && message["target"]["name"] == "nines-onboard"
            && let Some(path) = message["executable"].as_str()
        {
            executable = Some(PathBuf::from(path));
        }
    }
    if !child.wait()?.success() {
        bail!("cargo could not build nines-onboard for {target} (its errors are above)");
    }
    executable.context("cargo built no nines-onboard executable")
}

/// The libraries every glibc Linux system has: the C library and its
/// loader, and the C and C++ runtimes.
const BASE_LIBRARIES: &[&str] = &[
    "libc.so.",
    "libm.so.",
    "libpthread.so.",
    "libdl.so.",
    "librt.so.",
    "libutil.so.",
    "libgcc_s.so.",
    "libstdc++.so.",
    "ld-linux",
];

/// The shared libraries an ELF needs: its DT_NEEDED entries, in order.
/// (`object`'s format-independent imports do not list them for ELF.)
pub fn needed_libraries(path: &Path, bytes: &[u8]) -> anyhow::Result<Vec<String>> {
    use object::read::elf::{Dyn as _, FileHeader as _};
    let bad = |e: object::Error| anyhow::anyhow!("{}: reading its dynamic section: {e}", path.display());
    let header = object::elf::FileHeader64::<object::Endianness>::parse(bytes).map_err(bad)?;
    let endian = header.endian().map_err(bad)?;
    let sections = header.sections(endian, bytes).map_err(bad)?;
    let Some((dynamic, link)) = sections.dynamic(endian, bytes).map_err(bad)? else {
        return Ok(Vec::new()); // statically linked
    };
    let strings = sections.strings(endian, bytes, link).map_err(bad)?;
    dynamic
        .iter()
        .filter(|d| d.tag(endian) == object::elf::DT_NEEDED)
        .map(|d| Ok(String::from_utf8_lossy(d.string(endian, strings).map_err(bad)?).into_owned()))
        .collect()
}

/// Refuses a runtime needing a library the vehicle config says the robot
/// lacks (`[vehicle] system_libraries`); without that list, names what the
/// robot must have.
fn check_libraries(
    binary: &Path,
    needed: &[String],
    provided: Option<&[String]>,
    config: &Path,
) -> anyhow::Result<()> {
    let extra: Vec<&String> =
        needed.iter().filter(|l| !BASE_LIBRARIES.iter().any(|base| l.starts_with(base))).collect();
    let Some(provided) = provided else {
        if !extra.is_empty() {
            let names: Vec<&str> = extra.iter().map(|s| s.as_str()).collect();
            eprintln!(
                "note: the runtime needs {} on the robot ([vehicle] system_libraries in {} would check it)",
                names.join(", "),
                config.display()
            );
        }
        return Ok(());
    };
    let has = |lib: &str| {
        provided
            .iter()
            .any(|p| lib == p || ((p.ends_with('_') || p.ends_with('.')) && lib.starts_with(p.as_str())))
    };
    let missing: Vec<&str> = extra.iter().map(|s| s.as_str()).filter(|l| !has(l)).collect();
    if !missing.is_empty() {
        bail!(
            "{}: needs {}, which {} says the robot lacks ([vehicle] system_libraries); build the runtime \
             without them (OpenCV: leave out --opencv-sysroot, frames come over zenoh), or install them on \
             the robot and add them to system_libraries",
            binary.display(),
            missing.join(", "),
            config.display()
        );
    }
    Ok(())
}

/// Checks that `bytes` is an ELF for `arch` that runs on glibc [`GLIBC_FLOOR`],
/// and returns the newest glibc version it needs.
///
/// # Errors
/// When it is not an ELF, is built for another architecture, or needs a
/// newer glibc.
pub fn check_elf(path: &Path, bytes: &[u8], arch: &str) -> anyhow::Result<(u32, u32)> {
    use object::read::{Object, ObjectSection};
    let file = object::File::parse(bytes)
        .with_context(|| format!("{}: not an ELF executable or library", path.display()))?;
    let found = match file.architecture() {
        object::Architecture::Aarch64 => "aarch64",
        object::Architecture::X86_64 => "x86_64",
        other => bail!("{}: built for {other:?}, not {arch}", path.display()),
    };
    if found != arch {
        bail!("{}: built for {found}, but the bundle's target is {arch}", path.display());
    }
    let needed = file
        .section_by_name(".dynstr")
        .and_then(|s| s.data().ok())
        .and_then(|strings| {
            strings
                .split(|b| *b == 0)
                .filter_map(|s| std::str::from_utf8(s).ok()?.strip_prefix("GLIBC_"))
                .filter_map(|v| {
                    let mut parts = v.split('.').map(str::parse::<u32>);
                    Some((parts.next()?.ok()?, parts.next().and_then(Result::ok).unwrap_or(0)))
                })
                .max()
        })
        // No versioned glibc symbol: the oldest glibc Rust supports.
        .unwrap_or((2, 17));
    if needed > GLIBC_FLOOR {
        bail!(
            "{}: needs GLIBC_{}.{}, newer than the {}.{} of JetPack 6 (Ubuntu 22.04): build it against an older glibc",
            path.display(),
            needed.0,
            needed.1,
            GLIBC_FLOOR.0,
            GLIBC_FLOOR.1
        );
    }
    Ok(needed)
}
