//! The rmw_zenoh wire format (ROS 2 Jazzy), so that ROS 2 nodes on zenoh
//! can hear and feed the runtime without a bridge: key expressions built
//! from the topic, the DDS-mangled type name and the RIHS01 type hash; the
//! 33-byte attachment every sample carries; and the liveliness tokens that
//! make up the ROS graph, written by [`crate::zenoh_io`] and read back by
//! [`Token::parse`].
//!
//! The layout follows rmw_zenoh_cpp's `TopicInfo`, `AttachmentData`
//! (zenoh-cpp's serializer: two little-endian int64, then the GID as a
//! LEB128-length-prefixed byte sequence) and `liveliness_utils`; the zenoh
//! I/O tests check it from a plain Python zenoh peer (docs/NETWORK.md).

use nines_datasets::msg::type_hash;

use crate::Result;

/// The admin-space prefix of rmw_zenoh's liveliness tokens.
pub const LIVELINESS_PREFIX: &str = "@ros2_lv";

/// `/` -> `%`, as rmw_zenoh writes names inside liveliness keys.
#[must_use]
pub fn mangle(name: &str) -> String {
    name.replace('/', "%")
}

/// `%` -> `/`: a name as written in a liveliness key, back.
#[must_use]
pub fn demangle(name: &str) -> String {
    name.replace('%', "/")
}

/// What a liveliness token says an entity is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityKind {
    /// A node (`NN`).
    Node,
    /// A publisher (`MP`).
    Publisher,
    /// A subscription (`MS`).
    Subscription,
    /// A service server (`SS`).
    ServiceServer,
    /// A service client (`SC`).
    ServiceClient,
}

impl EntityKind {
    /// The entity's code in a liveliness key.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::Node => "NN",
            Self::Publisher => "MP",
            Self::Subscription => "MS",
            Self::ServiceServer => "SS",
            Self::ServiceClient => "SC",
        }
    }

    /// The kind whose code is `code`.
    #[must_use]
    pub fn from_code(code: &str) -> Option<Self> {
        [Self::Node, Self::Publisher, Self::Subscription, Self::ServiceServer, Self::ServiceClient]
            .into_iter()
            .find(|k| k.code() == code)
    }
}

/// The QoS a token advertises, read from rmw_zenoh's form
/// `rel:dur:hist,depth:deadline:lifespan:liveliness`, where an empty value is
/// rmw_zenoh's default (reliable, volatile, keep-last 42). Deadline,
/// lifespan and liveliness are not kept: nines neither sets nor reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QosProfile {
    /// Reliable (else best effort).
    pub reliable: bool,
    /// Transient local (else volatile).
    pub transient_local: bool,
    /// Queue depth for keep-last; `None` for keep-all.
    pub keep_last: Option<u32>,
}

impl QosProfile {
    /// Reads the token form; `None` if it is not one.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let parts: Vec<&str> = text.split(':').collect();
        let [reliability, durability, history, ..] = parts.as_slice() else { return None };
        if parts.len() != 6 {
            return None;
        }
        let (kind, depth) = history.split_once(',')?;
        let reliable = match *reliability {
            "" | "0" | "1" => true,
            "2" => false,
            _ => return None,
        };
        let transient_local = match *durability {
            "" | "0" | "2" => false,
            "1" => true,
            _ => return None,
        };
        let keep_last = match kind {
            "" | "0" | "1" => Some(if depth.is_empty() { 42 } else { depth.parse().ok()? }),
            "2" => None,
            _ => return None,
        };
        Some(Self { reliable, transient_local, keep_last })
    }
}

impl std::fmt::Display for QosProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let reliability = if self.reliable { "reliable" } else { "best_effort" };
        let durability = if self.transient_local { "transient_local" } else { "volatile" };
        match self.keep_last {
            Some(depth) => write!(f, "{reliability}, {durability}, keep_last {depth}"),
            None => write!(f, "{reliability}, {durability}, keep_all"),
        }
    }
}

/// The topic part of a publisher's or subscription's token (a service's
/// carries its service name and type the same way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenTopic {
    /// The full name, e.g. `/control/command`.
    pub name: String,
    /// The ROS type, e.g. `ackermann_msgs/msg/AckermannDriveStamped`.
    pub type_name: String,
    /// `RIHS01_<64 hex>`.
    pub type_hash: String,
    /// The advertised QoS, when it reads as one.
    pub qos: Option<QosProfile>,
}

/// One rmw_zenoh liveliness token, read back:
/// `@ros2_lv/<domain>/<zid>/<nid>/<id>/<kind>/<enclave>/<namespace>/<node>[/<topic>/<type>/<hash>/<qos>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// ROS domain.
    pub domain: u32,
    /// The zenoh session's id.
    pub zid: String,
    /// The node's id within its session.
    pub node_id: String,
    /// The entity's id within its session.
    pub entity_id: String,
    /// What it is.
    pub kind: EntityKind,
    /// The node's namespace, `/` for none.
    pub namespace: String,
    /// The node's name.
    pub node: String,
    /// What a publisher, subscription or service is on; `None` for a node.
    pub topic: Option<TokenTopic>,
}

impl Token {
    /// Reads a liveliness key; `None` if it is not an rmw_zenoh token.
    #[must_use]
    pub fn parse(key: &str) -> Option<Self> {
        let f: Vec<&str> = key.split('/').collect();
        if f.len() < 9 || f[0] != LIVELINESS_PREFIX {
            return None;
        }
        let kind = EntityKind::from_code(f[5])?;
        let topic = match (kind, f.len()) {
            (EntityKind::Node, 9) => None,
            (EntityKind::Node, _) => return None,
            (_, 13) => {
                let [name, type_name, type_hash, qos] = f.get(9..13)? else { return None };
                Some(TokenTopic {
                    name: demangle(name),
                    type_name: ros_type_name(type_name)?,
                    type_hash: (*type_hash).to_owned(),
                    qos: QosProfile::parse(qos),
                })
            }
            (_, _) => return None,
        };
        Some(Self {
            domain: f[1].parse().ok()?,
            zid: f[2].to_owned(),
            node_id: f[3].to_owned(),
            entity_id: f[4].to_owned(),
            kind,
            namespace: demangle(f[7]),
            node: demangle(f[8]),
            topic,
        })
    }

    /// The node's full name, e.g. `/nines_onboard` or `/robot/nines_onboard`.
    #[must_use]
    pub fn node_name(&self) -> String {
        format!("{}/{}", self.namespace.trim_end_matches('/'), self.node)
    }
}

/// `sensor_msgs::msg::dds_::Image_` -> `sensor_msgs/msg/Image`.
#[must_use]
pub fn ros_type_name(dds: &str) -> Option<String> {
    let (namespace, name) = dds.rsplit_once("::dds_::")?;
    let name = name.strip_suffix('_')?;
    Some(format!("{}/{name}", namespace.replace("::", "/")))
}

/// `sensor_msgs/msg/Image` -> `sensor_msgs::msg::dds_::Image_`.
#[must_use]
pub fn dds_type_name(type_name: &str) -> String {
    match type_name.rsplit_once('/') {
        Some((namespace, name)) => format!("{}::dds_::{name}_", namespace.replace('/', "::")),
        None => format!("dds_::{type_name}_"),
    }
}

/// The key expression of `topic` (e.g. `/control/command`) carrying
/// `type_name` on ROS domain `domain`:
/// `<domain>/<topic without its outer slashes>/<dds type>/<RIHS01 hash>`.
pub fn topic_key(domain: u32, topic: &str, type_name: &str) -> Result<String> {
    let hash = type_hash(type_name)?;
    Ok(format!("{domain}/{}/{}/{hash}", topic.trim_matches('/'), dds_type_name(type_name)))
}

/// Length of an rmw_zenoh attachment, bytes.
pub const ATTACHMENT_LEN: usize = 33;

/// What rmw_zenoh attaches to every sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attachment {
    /// Per-publisher sequence number, from 1.
    pub sequence_number: i64,
    /// Source timestamp, ns since the epoch.
    pub source_timestamp_ns: i64,
    /// The publisher's 16-byte GID.
    pub gid: [u8; 16],
}

impl Attachment {
    /// The wire bytes.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; ATTACHMENT_LEN] {
        let mut out = [0u8; ATTACHMENT_LEN];
        out[..8].copy_from_slice(&self.sequence_number.to_le_bytes());
        out[8..16].copy_from_slice(&self.source_timestamp_ns.to_le_bytes());
        out[16] = 16; // LEB128 length of the GID sequence
        out[17..].copy_from_slice(&self.gid);
        out
    }

    /// Reads an attachment; `None` unless it is exactly the Jazzy layout.
    #[must_use]
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != ATTACHMENT_LEN || bytes[16] != 16 {
            return None;
        }
        let int = |range: std::ops::Range<usize>| bytes.get(range)?.try_into().ok().map(i64::from_le_bytes);
        Some(Self {
            sequence_number: int(0..8)?,
            source_timestamp_ns: int(8..16)?,
            gid: bytes[17..].try_into().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_rmw_zenoh() {
        assert_eq!(dds_type_name("std_msgs/msg/String"), "std_msgs::msg::dds_::String_");
        assert_eq!(
            topic_key(0, nines_datasets::topics::COMMAND, "ackermann_msgs/msg/AckermannDriveStamped")
                .unwrap(),
            "0/control/command/ackermann_msgs::msg::dds_::AckermannDriveStamped_/\
             RIHS01_48ca7612a08d3bb72744fd98b71b7cf2ea24c6ad50fa4e1aa0bbad963c90d8cf"
        );
        assert!(topic_key(0, "/x", "nobody_msgs/msg/Nothing").is_err());
    }

    #[test]
    fn tokens_read_back() {
        let key = "@ros2_lv/0/15386cbcc54af6cf065932a76d94883/0/4/MP/%/%/nines_sim/\
                   %camera%front%image%compressed/sensor_msgs::msg::dds_::CompressedImage_/RIHS01_1564/::,10:,:,:,,";
        let t = Token::parse(key).unwrap();
        assert_eq!((t.domain, t.kind, t.node_name().as_str()), (0, EntityKind::Publisher, "/nines_sim"));
        let topic = t.topic.unwrap();
        assert_eq!(topic.name, "/camera/front/image/compressed");
        assert_eq!(topic.type_name, "sensor_msgs/msg/CompressedImage");
        assert_eq!(topic.qos.unwrap().to_string(), "reliable, volatile, keep_last 10");
        let node = Token::parse("@ros2_lv/3/abc/0/0/NN/%/%robot/nines_onboard").unwrap();
        assert_eq!(
            (node.domain, node.kind, node.node_name().as_str()),
            (3, EntityKind::Node, "/robot/nines_onboard")
        );
        assert!(node.topic.is_none());
        // rmw_zenoh's defaults when empty; best effort, transient local, keep-all spelled out.
        assert_eq!(QosProfile::parse("::,:,:,:,,").unwrap().to_string(), "reliable, volatile, keep_last 42");
        assert_eq!(
            QosProfile::parse("2::,5:,:,:,,").unwrap().to_string(),
            "best_effort, volatile, keep_last 5"
        );
        assert_eq!(
            QosProfile::parse("1:1:2,:,:,:,,").unwrap().to_string(),
            "reliable, transient_local, keep_all"
        );
        for bad in ["", "7::,10:,:,:,,", "::10:,:,:,,", "::,x:,:,:,,"] {
            assert_eq!(QosProfile::parse(bad), None, "{bad}");
        }
        for bad in [
            "@ros2_lv/0/z/0/1/XX/%/%/n",
            "@ros2_lv/0/z/0/1/MP/%/%/n",
            "@ros2_lv/0/z/0/0/NN/%/%/n/extra",
            "@ros2_lv/0/z/0/1/MP/%/%/n/%t/std_msgs::msg::dds_::Empty_/RIHS01_0/::,10:,:,:,,/extra",
            "@other/0/z/0/0/NN/%/%/n",
            "@ros2_lv/0/z/0/1/MP/%/%/n/%t/NotADdsType/RIHS01_0/::,10:,:,:,,",
        ] {
            assert_eq!(Token::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn attachments_round_trip_in_the_jazzy_layout() {
        let a =
            Attachment { sequence_number: 1, source_timestamp_ns: 1_700_000_000_123_456_789, gid: [7; 16] };
        let bytes = a.to_bytes();
        assert_eq!((bytes[0], bytes[16], bytes[17], bytes.len()), (1, 16, 7, 33));
        assert_eq!(i64::from_le_bytes(bytes[8..16].try_into().unwrap()), 1_700_000_000_123_456_789);
        assert_eq!(Attachment::parse(&bytes), Some(a));
        assert_eq!(Attachment::parse(&bytes[..32]), None);
        let mut bad = bytes;
        bad[16] = 12;
        assert_eq!(Attachment::parse(&bad), None);
    }
}
