//! The rmw_zenoh wire format (ROS 2 Jazzy), so that ROS 2 nodes on zenoh
//! can hear and feed the runtime without a bridge: key expressions built
//! from the topic, the DDS-mangled type name and the RIHS01 type hash, and
//! the 33-byte attachment every sample carries.
//!
//! Groundwork for the zenoh I/O: the layout follows rmw_zenoh_cpp's
//! `TopicInfo` and `AttachmentData` (zenoh-cpp's serializer: two
//! little-endian int64, then the GID as a LEB128-length-prefixed byte
//! sequence), to be checked against a live rmw_zenoh peer with the I/O.

use nines_datasets::msg::type_hash;

use crate::Result;

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
