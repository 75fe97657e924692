//! `[zenoh]`: how the runtime joins the robot's network, and `[zenoh.tls]`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `[zenoh]`: how a node joins the robot's network. The defaults are
/// rmw_zenoh's (ROS 2 Jazzy): a peer that connects to a router on
/// `tcp/localhost:7447` and listens on an ephemeral loopback port,
/// multicast scouting off, ROS domain 0.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// `peer` (as rmw_zenoh's nodes) or `client` (through a router only).
    #[serde(default = "default_zenoh_mode")]
    pub mode: String,
    /// Endpoints to connect to, e.g. `tcp/127.0.0.1:7447` or `tls/robot.local:7447`.
    #[serde(default = "default_zenoh_connect")]
    pub connect: Vec<String>,
    /// Endpoints to listen on, e.g. `tcp/0.0.0.0:7448`; `[]` for none. By
    /// default a peer listens as rmw_zenoh's nodes do, on an ephemeral port
    /// on loopback (`tcp/localhost:0`, or `tls/127.0.0.1:0` with
    /// `[zenoh.tls]`, an address the fleet certificates name), so that other
    /// peers on this machine, told about it by gossip, connect to it
    /// directly; a client listens on nothing.
    #[serde(default)]
    pub listen: Option<Vec<String>>,
    /// ROS domain (`ROS_DOMAIN_ID`), the first chunk of every key.
    #[serde(default)]
    pub domain_id: u32,
    /// ROS namespace of the node, `/` for none.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// ROS node name.
    #[serde(default = "default_node_name")]
    pub node: String,
    /// Multicast scouting (off in rmw_zenoh: peers find each other through the router).
    #[serde(default)]
    pub multicast_scouting: bool,
    /// Zenoh shared memory for large payloads between processes on one machine.
    #[serde(default = "default_true")]
    pub shared_memory: bool,
    /// Odometry topic the ego speed is read from (`--source zenoh`).
    #[serde(default = "default_odometry_topic")]
    pub odometry_topic: String,
    /// Mutual TLS: `tls/...` endpoints use these, written by `nines certs`.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// A zenoh access-control file (JSON5, the `access_control` object) this
    /// node enforces on what it receives, e.g. the one `nines certs` writes.
    #[serde(default)]
    pub access_control: Option<PathBuf>,
}

impl NetworkConfig {
    /// The endpoints this node listens on: `listen`, or the default above.
    #[must_use]
    pub fn listen_endpoints(&self) -> Vec<String> {
        match (&self.listen, self.mode.as_str(), &self.tls) {
            (Some(listen), _, _) => listen.clone(),
            (None, "client", _) => Vec::new(),
            // An address, not a name: peers dial what the listener bound,
            // and the fleet certificates name 127.0.0.1.
            (None, _, Some(_)) => vec!["tls/127.0.0.1:0".into()],
            (None, _, None) => vec!["tcp/localhost:0".into()],
        }
    }

    /// Checks the values; on error, the key and the fix.
    pub fn check(&self) -> std::result::Result<(), (&'static str, String)> {
        if !matches!(self.mode.as_str(), "peer" | "client") {
            return Err(("mode", format!("`{}` is not a mode; use \"peer\" or \"client\"", self.mode)));
        }
        if self.mode == "client" && self.connect.is_empty() {
            return Err(("connect", "a client needs at least one endpoint to connect to".into()));
        }
        if self.mode == "client" && self.listen.as_ref().is_some_and(|l| !l.is_empty()) {
            return Err(("listen", "a client does not listen; use mode = \"peer\"".into()));
        }
        for e in self.connect.iter().chain(&self.listen_endpoints()) {
            let Some((proto, addr)) = e.split_once('/') else {
                return Err((
                    "connect / listen",
                    format!("`{e}` is not an endpoint; write e.g. tcp/127.0.0.1:7447"),
                ));
            };
            if !matches!(proto, "tcp" | "tls") || addr.is_empty() {
                return Err((
                    "connect / listen",
                    format!("`{e}`: nines-onboard speaks tcp/ and tls/ endpoints, e.g. tls/robot.local:7447"),
                ));
            }
            if proto == "tls" && self.tls.is_none() {
                return Err((
                    "tls",
                    format!(
                        "`{e}` is a TLS endpoint: add [zenoh.tls] with root_ca, certificate and private_key (`nines certs` writes them)"
                    ),
                ));
            }
        }
        let name_ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !name_ok(&self.node) {
            return Err(("node", format!("`{}` is not a ROS node name (letters, digits, _)", self.node)));
        }
        if !self.namespace.starts_with('/') {
            return Err((
                "namespace",
                format!("`{}` must start with / (use \"/\" for none)", self.namespace),
            ));
        }
        Ok(())
    }
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            mode: default_zenoh_mode(),
            connect: default_zenoh_connect(),
            listen: None,
            domain_id: 0,
            namespace: default_namespace(),
            node: default_node_name(),
            multicast_scouting: false,
            shared_memory: true,
            odometry_topic: default_odometry_topic(),
            tls: None,
            access_control: None,
        }
    }
}

/// `[zenoh.tls]`: the fleet's certificate authority and this node's
/// certificate and key (PEM), used both to listen and to connect.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The fleet CA certificate.
    pub root_ca: PathBuf,
    /// This node's certificate (its common name is its identity in access control).
    pub certificate: PathBuf,
    /// This node's private key.
    pub private_key: PathBuf,
}

fn default_zenoh_mode() -> String {
    "peer".into()
}
fn default_zenoh_connect() -> Vec<String> {
    vec!["tcp/localhost:7447".into()]
}
fn default_namespace() -> String {
    "/".into()
}
fn default_node_name() -> String {
    "nines_onboard".into()
}
fn default_odometry_topic() -> String {
    nines_datasets::topics::ODOMETRY.into()
}
fn default_true() -> bool {
    true
}

impl TlsConfig {
    /// Node `name`'s files in a folder written by `nines certs`:
    /// `ca.pem`, `<name>.pem` and `<name>.key`.
    #[must_use]
    pub fn in_folder(dir: &Path, name: &str) -> Self {
        Self {
            root_ca: dir.join("ca.pem"),
            certificate: dir.join(format!("{name}.pem")),
            private_key: dir.join(format!("{name}.key")),
        }
    }
}
