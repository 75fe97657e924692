//! Zenoh I/O that ROS 2 understands (feature `zenoh`): a [`Node`] joins the
//! robot's network the way an rmw_zenoh node does, so `ros2 topic list/echo`
//! on a Jazzy machine with `RMW_IMPLEMENTATION=rmw_zenoh_cpp` sees and reads
//! nines, and ROS 2 cameras and odometry feed it, with no bridge and no ROS
//! install here.
//!
//! What goes on the wire (rmw_zenoh_cpp 0.2.10, the newest Jazzy release,
//! which vendors zenoh-c/zenoh-cpp 1.8.0; zenoh 1.x peers interoperate):
//! * data on `<domain>/<topic>/<pkg>::msg::dds_::<Type>_/RIHS01_<hash>`
//!   ([`crate::rmw::topic_key`]), the payload CDR with its encapsulation
//!   header, no zenoh encoding, and the 33-byte [`Attachment`]
//!   (sequence number from 1, source timestamp, GID);
//! * liveliness tokens `@ros2_lv/<domain>/<zid>/<nid>/<id>/<NN|MP|MS>/
//!   <enclave>/<namespace>/<node>[/<topic>/<type>/<hash>/<qos>]` with `/`
//!   written `%`, for the node and each publisher and subscription;
//! * each entity's GID: XXH3-128 of its liveliness key, low half first.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use nines_datasets::contract::short_hex;
use nines_datasets::msg::{Empty, RosMessage, type_hash};
use nines_datasets::topics::ENGAGE;
use zenoh::Wait;
use zenoh::liveliness::LivelinessToken;
use zenoh::pubsub::{Publisher, Subscriber};
use zenoh::sample::Sample;

use crate::config::NetworkConfig;
use crate::rmw::{Attachment, EntityKind, LIVELINESS_PREFIX, dds_type_name, mangle, topic_key};
use crate::runtime::{Controls, Published, Sink};
use crate::source::system_now_ns;
use crate::{OnboardError, Result};

/// The QoS an entity advertises in its liveliness token, which ROS 2 nodes
/// on rmw_zenoh check for compatibility (zenoh delivers either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos {
    /// Reliable, volatile, keep-last 10: ROS 2's default, for commands,
    /// diagnostics, model outputs and events.
    Reliable,
    /// Best effort, volatile, keep-last 5 (`rclcpp::SensorDataQoS`): what a
    /// subscription to a camera or odometry asks for, so that it matches
    /// best-effort sensor drivers as well as reliable publishers without a
    /// QoS-incompatibility event on their side.
    SensorData,
}

impl Qos {
    /// The token form: `rel:dur:hist,depth:deadline:lifespan:liveliness`,
    /// with only what differs from rmw_zenoh's defaults (reliable, volatile,
    /// keep-last 42, infinite durations, automatic liveliness) written;
    /// best effort is reliability 2.
    #[must_use]
    pub fn token(self) -> &'static str {
        match self {
            Self::Reliable => "::,10:,:,:,,",
            Self::SensorData => "2::,5:,:,:,,",
        }
    }
}

/// The node's id within its session (one node per session; a node token
/// carries its id twice, as rmw_zenoh's do); entities count on from 1.
const NODE_ID: u64 = 0;

/// The GID rmw_zenoh gives the entity whose liveliness key is `key`.
#[must_use]
pub fn gid_of(key: &str) -> [u8; 16] {
    let h = xxhash_rust::xxh3::xxh3_128(key.as_bytes());
    let mut gid = [0u8; 16];
    gid[..8].copy_from_slice(&(h as u64).to_le_bytes());
    gid[8..].copy_from_slice(&((h >> 64) as u64).to_le_bytes());
    gid
}

fn net_error(what: &str, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> OnboardError {
    OnboardError::Network { context: what.to_owned(), source: e.into() }
}

/// The zenoh configuration for `net` (paths relative to `base_dir`).
pub fn zenoh_config(net: &NetworkConfig, base_dir: &Path) -> Result<zenoh::Config> {
    net.check().map_err(|(key, fix)| net_error(&format!("[zenoh] {key}"), fix))?;
    let mut c = zenoh::Config::default();
    let mut set = |key: &str, value: String| {
        c.insert_json5(key, &value).map_err(|e| net_error(&format!("zenoh config `{key}` = {value}"), e))
    };
    set("mode", serde_json::json!(net.mode).to_string())?;
    set("connect/endpoints", serde_json::json!(net.connect).to_string())?;
    set("listen/endpoints", serde_json::json!(net.listen_endpoints()).to_string())?;
    set("scouting/multicast/enabled", serde_json::json!(net.multicast_scouting).to_string())?;
    set("transport/shared_memory/enabled", serde_json::json!(net.shared_memory).to_string())?;
    if let Some(tls) = &net.tls {
        let path = |p: &Path| {
            let p = if p.is_absolute() { p.to_path_buf() } else { base_dir.join(p) };
            if p.is_file() {
                Ok(p.display().to_string())
            } else {
                Err(net_error(
                    "[zenoh.tls]",
                    format!(
                        "{} does not exist; `nines certs --out DIR` writes the fleet's files",
                        p.display()
                    ),
                ))
            }
        };
        let (ca, cert, key) = (path(&tls.root_ca)?, path(&tls.certificate)?, path(&tls.private_key)?);
        set("transport/link/tls/root_ca_certificate", serde_json::json!(ca).to_string())?;
        set("transport/link/tls/listen_certificate", serde_json::json!(cert).to_string())?;
        set("transport/link/tls/listen_private_key", serde_json::json!(key).to_string())?;
        set("transport/link/tls/connect_certificate", serde_json::json!(cert).to_string())?;
        set("transport/link/tls/connect_private_key", serde_json::json!(key).to_string())?;
        set("transport/link/tls/enable_mtls", "true".into())?;
    }
    if let Some(acl) = &net.access_control {
        let p = if acl.is_absolute() { acl.clone() } else { base_dir.join(acl) };
        let text = std::fs::read_to_string(&p)
            .map_err(|e| net_error(&format!("[zenoh] access_control {}", p.display()), e))?;
        c.insert_json5("access_control", &text).map_err(|e| {
            net_error(
                &format!("{}", p.display()),
                format!("not a zenoh access_control object ({e}); see the one `nines certs` writes"),
            )
        })?;
    }
    Ok(c)
}

/// A ROS 2 node on zenoh: a session, its identity and its liveliness token.
pub struct Node {
    session: zenoh::Session,
    domain: u32,
    zid: String,
    namespace: String,
    name: String,
    next_id: AtomicU64,
    _token: LivelinessToken,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("name", &self.name).field("zid", &self.zid).finish_non_exhaustive()
    }
}

impl Node {
    /// Opens a session as configured and declares the node.
    pub fn open(net: &NetworkConfig, base_dir: &Path) -> Result<Arc<Self>> {
        let session = zenoh::open(zenoh_config(net, base_dir)?).wait().map_err(|e| {
            net_error(
                &format!(
                    "opening the zenoh session (connect {:?}, listen {:?})",
                    net.connect,
                    net.listen_endpoints()
                ),
                e,
            )
        })?;
        Self::with_session(session, net)
    }

    /// Declares the node on an open session.
    pub fn with_session(session: zenoh::Session, net: &NetworkConfig) -> Result<Arc<Self>> {
        let zid = session.zid().to_string();
        let node_key = format!(
            "{LIVELINESS_PREFIX}/{}/{zid}/{NODE_ID}/{NODE_ID}/NN/%/{}/{}",
            net.domain_id,
            mangle(&net.namespace),
            net.node
        );
        let token = declare_token(&session, &node_key)?;
        Ok(Arc::new(Self {
            session,
            domain: net.domain_id,
            zid,
            namespace: net.namespace.clone(),
            name: net.node.clone(),
            next_id: AtomicU64::new(1),
            _token: token,
        }))
    }

    /// The zenoh session.
    #[must_use]
    pub fn session(&self) -> &zenoh::Session {
        &self.session
    }

    /// ROS domain.
    #[must_use]
    pub fn domain(&self) -> u32 {
        self.domain
    }

    /// The full topic name (relative names go under the namespace).
    fn full_topic(&self, topic: &str) -> String {
        if topic.starts_with('/') || self.namespace == "/" {
            format!("/{}", topic.trim_start_matches('/'))
        } else {
            format!("{}/{topic}", self.namespace.trim_end_matches('/'))
        }
    }

    /// The liveliness key of a new entity on `topic` carrying `type_name`.
    fn entity_key(&self, kind: EntityKind, topic: &str, type_name: &str, qos: Qos) -> Result<String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let hash = type_hash(type_name)?;
        Ok(format!(
            "{LIVELINESS_PREFIX}/{}/{}/{NODE_ID}/{id}/{}/%/{}/{}/{}/{}/{hash}/{}",
            self.domain,
            self.zid,
            kind.code(),
            mangle(&self.namespace),
            self.name,
            mangle(&self.full_topic(topic)),
            dds_type_name(type_name),
            qos.token(),
        ))
    }

    /// A publisher of `T` on `topic`.
    pub fn publisher<T: RosMessage>(&self, topic: &str) -> Result<RosPublisher<T>> {
        let key = topic_key(self.domain, &self.full_topic(topic), T::TYPE_NAME)?;
        let token_key = self.entity_key(EntityKind::Publisher, topic, T::TYPE_NAME, Qos::Reliable)?;
        let publisher = self
            .session
            .declare_publisher(key.clone())
            .wait()
            .map_err(|e| net_error(&format!("declaring a publisher on {key}"), e))?;
        let token = declare_token(&self.session, &token_key)?;
        Ok(RosPublisher {
            publisher,
            gid: gid_of(&token_key),
            key,
            sequence: 0,
            buffer: Vec::new(),
            _token: token,
            _type: std::marker::PhantomData,
        })
    }

    /// Subscribes to `topic` carrying `type_name`, advertising `qos`;
    /// `callback` gets every sample (on zenoh's thread: hand heavy work to
    /// another one).
    pub fn subscribe<F>(&self, topic: &str, type_name: &str, qos: Qos, callback: F) -> Result<RosSubscriber>
    where
        F: Fn(Sample) + Send + Sync + 'static,
    {
        let key = topic_key(self.domain, &self.full_topic(topic), type_name)?;
        let token_key = self.entity_key(EntityKind::Subscription, topic, type_name, qos)?;
        let subscriber = self
            .session
            .declare_subscriber(key.clone())
            .callback(callback)
            .wait()
            .map_err(|e| net_error(&format!("subscribing to {key}"), e))?;
        let token = declare_token(&self.session, &token_key)?;
        Ok(RosSubscriber { key, _subscriber: subscriber, _token: token })
    }

    /// Re-engagement requests from the network: a `std_msgs/msg/Empty` on
    /// /nines/engage asks the runtime to engage again after a controlled
    /// stop, as `engage` typed on its stdin does. The safety monitor still
    /// waits for its run of good frames. Who may send one is the fleet's
    /// access-control policy's business (`nines certs --others-publish`).
    pub fn engage_requests(&self, controls: Arc<Controls>) -> Result<RosSubscriber> {
        self.subscribe(ENGAGE, Empty::TYPE_NAME, Qos::Reliable, move |sample| {
            if let Err(e) = decode::<Empty>(&sample) {
                tracing::warn!("ignoring a re-engagement request: {e}");
                return;
            }
            let from = attachment(&sample).map_or_else(|| "no attachment".into(), |a| short_hex(&a.gid));
            tracing::info!("re-engagement requested on {ENGAGE} (publisher {from})");
            controls.engage.store(true, Ordering::Relaxed);
        })
    }

    /// Watches the ROS graph on this node's domain: the rmw_zenoh tokens
    /// present now and as they come and go.
    pub fn watch_graph(&self) -> Result<GraphWatch> {
        let key = format!("{LIVELINESS_PREFIX}/{}/**", self.domain);
        let tokens = Arc::new(Mutex::new(BTreeSet::new()));
        let t = Arc::clone(&tokens);
        let subscriber = self
            .session
            .liveliness()
            .declare_subscriber(key.as_str())
            .history(true)
            .callback(move |sample: Sample| {
                let mut t = t.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if sample.kind() == zenoh::sample::SampleKind::Put {
                    t.insert(sample.key_expr().to_string());
                } else {
                    t.remove(sample.key_expr().as_str());
                }
            })
            .wait()
            .map_err(|e| net_error(&format!("watching {key}"), e))?;
        Ok(GraphWatch { tokens, _subscriber: subscriber })
    }

    /// The liveliness key expression matching every publisher (or
    /// subscription) of `topic` on this domain: any node, type and QoS.
    #[must_use]
    pub fn liveliness_of(&self, kind: EntityKind, topic: &str) -> String {
        format!(
            "{LIVELINESS_PREFIX}/{}/*/*/*/{}/*/*/*/{}/**",
            self.domain,
            kind.code(),
            mangle(&self.full_topic(topic))
        )
    }
}

/// The ROS graph's liveliness tokens as they come and go ([`Node::watch_graph`]).
pub struct GraphWatch {
    tokens: Arc<Mutex<BTreeSet<String>>>,
    _subscriber: Subscriber<()>,
}

impl GraphWatch {
    /// The tokens present now, sorted.
    #[must_use]
    pub fn tokens(&self) -> Vec<String> {
        self.tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().cloned().collect()
    }
}

impl std::fmt::Debug for GraphWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphWatch").field("tokens", &self.tokens().len()).finish_non_exhaustive()
    }
}

fn declare_token(session: &zenoh::Session, key: &str) -> Result<LivelinessToken> {
    session
        .liveliness()
        .declare_token(key)
        .wait()
        .map_err(|e| net_error(&format!("declaring the liveliness token {key}"), e))
}

/// A publisher of one message type, as rmw_zenoh's.
pub struct RosPublisher<T> {
    publisher: Publisher<'static>,
    gid: [u8; 16],
    key: String,
    sequence: i64,
    buffer: Vec<u8>,
    _token: LivelinessToken,
    _type: std::marker::PhantomData<fn(&T)>,
}

impl<T> std::fmt::Debug for RosPublisher<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RosPublisher")
            .field("key", &self.key)
            .field("sequence", &self.sequence)
            .finish_non_exhaustive()
    }
}

impl<T: RosMessage> RosPublisher<T> {
    /// Publishes `msg` (CDR, little-endian, with its encapsulation header).
    pub fn put(&mut self, msg: &T) -> Result<()> {
        self.buffer.clear();
        nines_datasets::cdr::encode_into(msg, &mut self.buffer)
            .map_err(|e| net_error(&format!("encoding {} for {}", T::TYPE_NAME, self.key), e))?;
        self.sequence += 1;
        let attachment = Attachment {
            sequence_number: self.sequence,
            source_timestamp_ns: system_now_ns() as i64,
            gid: self.gid,
        };
        self.publisher
            .put(self.buffer.as_slice())
            .attachment(attachment.to_bytes().as_slice())
            .wait()
            .map_err(|e| net_error(&format!("publishing on {}", self.key), e))
    }

    /// The data key.
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The publisher's GID.
    #[must_use]
    pub fn gid(&self) -> [u8; 16] {
        self.gid
    }
}

/// A subscription; dropping it unsubscribes.
pub struct RosSubscriber {
    key: String,
    _subscriber: Subscriber<()>,
    _token: LivelinessToken,
}

impl std::fmt::Debug for RosSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RosSubscriber").field("key", &self.key).finish_non_exhaustive()
    }
}

/// Decodes a sample's CDR payload as `T`, naming the key on failure.
pub fn decode<T: RosMessage>(sample: &Sample) -> Result<T> {
    nines_datasets::cdr::decode(&sample.payload().to_bytes())
        .map_err(|e| net_error(&format!("decoding {} on {}", T::TYPE_NAME, sample.key_expr()), e))
}

/// A sample's rmw_zenoh attachment, when it has a well-formed one.
#[must_use]
pub fn attachment(sample: &Sample) -> Option<Attachment> {
    sample.attachment().and_then(|a| Attachment::parse(&a.to_bytes()))
}

/// The runtime's four outputs on zenoh.
#[derive(Debug)]
pub struct RuntimePublishers {
    command: RosPublisher<nines_datasets::msg::AckermannDriveStamped>,
    model_output: RosPublisher<nines_datasets::msg::ModelOutput>,
    diagnostics: RosPublisher<nines_datasets::msg::DiagnosticArray>,
    events: RosPublisher<nines_datasets::msg::Event>,
}

impl RuntimePublishers {
    /// Declares /control/command, /nines/model_output, /diagnostics and /nines/events.
    pub fn declare(node: &Node) -> Result<Self> {
        use nines_datasets::topics;
        Ok(Self {
            command: node.publisher(topics::COMMAND)?,
            model_output: node.publisher(topics::MODEL_OUTPUT)?,
            diagnostics: node.publisher(topics::DIAGNOSTICS)?,
            events: node.publisher(topics::EVENTS)?,
        })
    }

    /// Publishes one runtime message.
    pub fn put(&mut self, message: &Published) -> Result<()> {
        match message {
            Published::Command(m) => self.command.put(m),
            Published::ModelOutput(m) => self.model_output.put(m),
            Published::Diagnostics(m) => self.diagnostics.put(m),
            Published::Event(m) => self.events.put(m),
        }
    }

    /// A runtime sink that publishes everything, then hands it to `next`.
    #[must_use]
    pub fn into_sink(mut self, mut next: Sink) -> Sink {
        let mut warned = false;
        Box::new(move |m| {
            if let Err(e) = self.put(m)
                && !std::mem::replace(&mut warned, true)
            {
                tracing::error!("{e} (further publishing errors are not logged)");
            }
            next(m);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rmw::Token;

    #[test]
    fn gids_and_names_follow_rmw_zenoh() {
        assert_eq!(mangle("/control/command"), "%control%command");
        let a = gid_of("@ros2_lv/0/1234/0/1/MP/%/%/nines_onboard/%control%command/x/y/::,10:,:,:,,");
        let b = gid_of("@ros2_lv/0/1234/0/2/MP/%/%/nines_onboard/%control%command/x/y/::,10:,:,:,,");
        assert_ne!(a, b);
        // XXH3-128 of the empty string is 99aa06d3014798d86001c324468d497f (low half 0x6001c324468d497f).
        assert_eq!(&gid_of("")[..8], &0x6001_c324_468d_497f_u64.to_le_bytes());
    }

    #[test]
    fn tokens_advertise_each_entity_with_its_qos() {
        // A peer alone: no router to connect to, nothing listening.
        let net = NetworkConfig { connect: Vec::new(), ..NetworkConfig::default() };
        let node = Node::open(&net, Path::new(".")).unwrap();
        let _camera = node
            .subscribe(
                "/camera/front/image/compressed",
                "sensor_msgs/msg/CompressedImage",
                Qos::SensorData,
                |_| {},
            )
            .unwrap();
        let _command =
            node.publisher::<nines_datasets::msg::AckermannDriveStamped>("/control/command").unwrap();
        let tokens: Vec<String> = node
            .session()
            .liveliness()
            .get(format!("{LIVELINESS_PREFIX}/**"))
            .wait()
            .unwrap()
            .iter()
            .filter_map(|r| r.into_result().ok().map(|s| s.key_expr().to_string()))
            .collect();
        let zid = node.session().zid().to_string();
        let find = |kind: EntityKind, topic: &str| {
            tokens
                .iter()
                .find(|t| {
                    Token::parse(t).is_some_and(|t| {
                        t.kind == kind && t.zid == zid && t.topic.is_some_and(|on| on.name == topic)
                    })
                })
                .unwrap_or_else(|| panic!("no {kind:?} token on {topic}: {tokens:?}"))
        };
        assert!(tokens.iter().any(|t| t.ends_with("/NN/%/%/nines_onboard")), "{tokens:?}");
        let camera = find(EntityKind::Subscription, "/camera/front/image/compressed");
        assert!(camera.ends_with("/sensor_msgs::msg::dds_::CompressedImage_/RIHS01_15640771531571185e2efc8a100baf923961a4d15d5569652e6cb6691e8e371a/2::,5:,:,:,,"), "{camera}");
        let command = find(EntityKind::Publisher, "/control/command");
        assert!(command.ends_with("/::,10:,:,:,,"), "{command}");
        assert!(command.contains(
            "/MP/%/%/nines_onboard/%control%command/ackermann_msgs::msg::dds_::AckermannDriveStamped_/"
        ));
    }

    #[test]
    fn bad_network_configs_are_refused() {
        let mut net = NetworkConfig { mode: "router".into(), ..NetworkConfig::default() };
        assert!(zenoh_config(&net, Path::new(".")).unwrap_err().to_string().contains("peer"));
        net.mode = "peer".into();
        net.connect = vec!["tls/127.0.0.1:7447".into()];
        assert!(zenoh_config(&net, Path::new(".")).unwrap_err().to_string().contains("[zenoh.tls]"));
        net.connect = vec!["udp/127.0.0.1:7447".into()];
        assert!(zenoh_config(&net, Path::new(".")).unwrap_err().to_string().contains("tcp/ and tls/"));
        net.connect = vec!["tcp/127.0.0.1:7447".into()];
        assert!(zenoh_config(&net, Path::new(".")).is_ok());
    }
}
