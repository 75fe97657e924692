//! `nines certs`: a certificate authority and one certificate per node for a
//! test fleet, plus the zenoh access-control policy that lets only the
//! runtime publish commands.
//!
//! Every node gets `<name>.pem` and `<name>.key` (its common name is the
//! name, the identity zenoh's access control matches), valid for the names
//! and addresses given with `--host` (localhost, 127.0.0.1 and ::1 always), used
//! for both sides of mutual TLS. `access-control.json5` is the
//! `access_control` object of a zenoh config: by default nothing is allowed;
//! fleet members may subscribe, query and take part in the ROS graph; the
//! runtime may publish anywhere, the others only on sensor topics.
//!
//! The folder holds every key: hand each node only `ca.pem`, its own
//! `<name>.pem`/`<name>.key` and the policy, and keep `ca.key` offline.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::Datelike;
use clap::Args;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The access-control file `nines certs` writes next to the certificates.
pub const ACCESS_CONTROL_FILE: &str = "access-control.json5";

/// `nines certs` arguments.
#[derive(Debug, Clone, Args)]
pub struct CertsArgs {
    /// Folder for ca.pem, ca.key, <node>.pem, <node>.key and access-control.json5.
    #[arg(long)]
    pub out: PathBuf,
    /// The runtime's name: the only certificate allowed to publish commands.
    #[arg(long, default_value = "nines-runtime")]
    pub runtime: String,
    /// Other fleet members (cameras, the simulator, tools), repeatable.
    #[arg(long = "node", default_values_t = ["sim".to_string(), "camera".to_string()])]
    pub nodes: Vec<String>,
    /// Topics (leading name chunks) the other nodes may publish on: `camera`
    /// allows /camera/..., on any ROS domain; add `nines/engage` to let them
    /// ask the runtime to re-engage after a stop. The runtime may publish anywhere.
    #[arg(long, value_delimiter = ',', default_value = "camera,vehicle,tf,tf_static,diagnostics,sim")]
    pub others_publish: Vec<String>,
    /// Host names or addresses the nodes are reached at, besides localhost, 127.0.0.1 and ::1.
    #[arg(long = "host")]
    pub hosts: Vec<String>,
    /// Days the certificates are valid.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// Replace files already in --out.
    #[arg(long)]
    pub force: bool,
}

fn check_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        bail!(
            "`{name}` is not a node name: use letters, digits, - and _ (it becomes a file name and a common name)"
        );
    }
    Ok(())
}

fn write(path: &Path, text: &str, secret: bool, force: bool) -> anyhow::Result<()> {
    if path.exists() && !force {
        bail!("{} exists; pass --force to replace the fleet's files", path.display());
    }
    if path.exists() {
        std::fs::remove_file(path).with_context(|| format!("replacing {}", path.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    // Secret keys are private from the moment they exist.
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path).with_context(|| format!("writing {}", path.display()))?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The access-control policy. Nothing is allowed by default. Every fleet
/// member may declare and query anything (subscriptions, queryables and
/// rmw_zenoh's `@ros2_lv` liveliness graph, which `**` does not reach); the
/// runtime may put and delete anywhere; the others only on the topics in
/// `publish` (`camera` allows `*/camera/**`, on any ROS domain).
///
/// An allow-list, not a deny rule on the command keys: zenoh denies a put
/// only when a deny rule's key includes the put's key, so a wildcard put
/// (`**`, `0/control/**`) would slip past a deny on `*/control/command/**`.
#[must_use]
pub fn access_control(runtime: &str, others: &[String], publish: &[String]) -> String {
    let graph = [
        "declare_subscriber",
        "query",
        "reply",
        "declare_queryable",
        "liveliness_token",
        "liveliness_query",
        "declare_liveliness_subscriber",
    ];
    let everywhere = ["**", "@ros2_lv/**"];
    let allowed: Vec<String> = publish.iter().map(|t| format!("*/{}/**", t.trim_matches('/'))).collect();
    let mut subjects = vec![serde_json::json!({"id": "runtime", "cert_common_names": [runtime]})];
    let mut fleet = vec!["runtime"];
    let mut policies = vec![
        serde_json::json!({"id": "runtime-publishes", "rules": ["publish-anything"], "subjects": ["runtime"]}),
    ];
    if !others.is_empty() {
        subjects.push(serde_json::json!({"id": "others", "cert_common_names": others}));
        fleet.push("others");
        policies.push(
            serde_json::json!({"id": "others-publish", "rules": ["publish-sensors"], "subjects": ["others"]}),
        );
    }
    policies.insert(0, serde_json::json!({"id": "fleet", "rules": ["graph", "send"], "subjects": fleet}));
    let policy = serde_json::json!({
        "enabled": true,
        "default_permission": "deny",
        "rules": [
            {"id": "graph", "messages": graph, "flows": ["ingress", "egress"], "permission": "allow", "key_exprs": everywhere},
            {"id": "send", "messages": ["put", "delete"], "flows": ["egress"], "permission": "allow", "key_exprs": everywhere},
            {"id": "publish-anything", "messages": ["put", "delete"], "flows": ["ingress"], "permission": "allow", "key_exprs": everywhere},
            {"id": "publish-sensors", "messages": ["put", "delete"], "flows": ["ingress"], "permission": "allow", "key_exprs": allowed},
        ],
        "subjects": subjects,
        "policies": policies,
    });
    let text = serde_json::to_string_pretty(&policy).unwrap_or_default();
    format!(
        "// zenoh access control for the fleet, written by `nines certs`: only {runtime} may publish\n\
         // commands; the others publish only on {}. Set it as [zenoh] access_control.\n{text}\n",
        publish.join(", ")
    )
}

/// Runs `nines certs`.
pub fn certs(args: &CertsArgs) -> anyhow::Result<()> {
    check_name(&args.runtime)?;
    for n in &args.nodes {
        check_name(n)?;
        if *n == args.runtime || n == "ca" {
            bail!("--node {n}: the name is taken (the runtime or the CA)");
        }
    }
    if args.days == 0 {
        bail!("--days must be at least 1");
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let today = chrono::Utc::now().date_naive();
    let ymd = |d: chrono::NaiveDate| rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8);
    let (not_before, not_after) =
        (ymd(today - chrono::Days::new(1)), ymd(today + chrono::Days::new(u64::from(args.days))));

    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name.push(DnType::CommonName, "nines fleet CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    ca_params.not_before = not_before;
    ca_params.not_after = not_after;
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    write(
        &nines_onboard::config::TlsConfig::in_folder(&args.out, "ca").root_ca,
        &ca_cert.pem(),
        false,
        args.force,
    )?;
    write(&args.out.join("ca.key"), &ca_key.serialize_pem(), true, args.force)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    names.extend(args.hosts.iter().cloned());
    for node in std::iter::once(&args.runtime).chain(&args.nodes) {
        let mut sans = vec![node.clone()];
        sans.extend(names.iter().cloned());
        let mut params = CertificateParams::new(sans).with_context(|| format!("--host values for {node}"))?;
        params.distinguished_name.push(DnType::CommonName, node.as_str());
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = not_before;
        params.not_after = not_after;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        // The layout nodes read back with TlsConfig::in_folder.
        let files = nines_onboard::config::TlsConfig::in_folder(&args.out, node);
        write(&files.certificate, &cert.pem(), false, args.force)?;
        write(&files.private_key, &key.serialize_pem(), true, args.force)?;
    }
    write(
        &args.out.join(ACCESS_CONTROL_FILE),
        &access_control(&args.runtime, &args.nodes, &args.others_publish),
        false,
        args.force,
    )?;
    println!(
        "fleet CA and certificates for {} (+ {}) in {}, valid {} days; only {} may publish commands ({}); give each node ca.pem, its own pair and the policy, and keep ca.key offline",
        args.runtime,
        args.nodes.join(", "),
        args.out.display(),
        args.days,
        args.runtime,
        ACCESS_CONTROL_FILE
    );
    println!(
        "vehicle.toml:\n  [zenoh]\n  connect = [\"tls/localhost:7447\"]\n  access_control = \"{dir}/{ACCESS_CONTROL_FILE}\"\n  [zenoh.tls]\n  root_ca = \"{dir}/ca.pem\"\n  certificate = \"{dir}/{r}.pem\"\n  private_key = \"{dir}/{r}.key\"",
        dir = args.out.display(),
        r = args.runtime
    );
    Ok(())
}
