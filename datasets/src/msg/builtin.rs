//! `builtin_interfaces/Time`, `std_msgs/Header` and `std_msgs/Empty`.

use serde::{Deserialize, Serialize};

/// `builtin_interfaces/Time`: seconds and nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Time {
    /// Whole seconds.
    pub sec: i32,
    /// Nanoseconds within the second, 0..1e9.
    pub nanosec: u32,
}

impl Time {
    /// Time from nanoseconds since the epoch (saturating at the i32 seconds range).
    #[must_use]
    pub fn from_nanos(nanos: u64) -> Self {
        let sec = (nanos / 1_000_000_000).min(i32::MAX as u64) as i32;
        Self { sec, nanosec: (nanos % 1_000_000_000) as u32 }
    }

    /// Nanoseconds since the epoch; times before the epoch give 0.
    #[must_use]
    pub fn as_nanos(self) -> u64 {
        u64::try_from(self.sec).map_or(0, |s| s * 1_000_000_000 + u64::from(self.nanosec))
    }
}

/// `std_msgs/Header`: capture time and coordinate frame.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Capture time (nines: equals the MCAP log time).
    pub stamp: Time,
    /// Frame the data is expressed in.
    pub frame_id: String,
}

impl Header {
    /// Header at `stamp_nanos` in `frame_id`.
    pub fn new(stamp_nanos: u64, frame_id: impl Into<String>) -> Self {
        Self { stamp: Time::from_nanos(stamp_nanos), frame_id: frame_id.into() }
    }
}

/// `std_msgs/Empty`: a message whose arrival is the information (nines:
/// a re-engagement request on /nines/engage).
///
/// Its `.msg` has no fields, but rosidl gives every empty struct one `uint8`
/// placeholder, so ROS 2 puts one zero byte on the wire after the CDR
/// header; this field is that byte.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {
    /// Always 0.
    pub structure_needs_at_least_one_member: u8,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_one_placeholder_byte_on_the_wire() {
        // What rclcpp publishes for std_msgs/msg/Empty: the CDR header, then 0.
        assert_eq!(crate::cdr::encode(&Empty::default()).unwrap(), [0, 1, 0, 0, 0]);
        assert_eq!(crate::cdr::decode::<Empty>(&[0, 1, 0, 0, 0]).unwrap(), Empty::default());
    }

    #[test]
    fn time_round_trips_nanos() {
        let t = Time::from_nanos(1_317_046_945_964_389_445);
        assert_eq!(t, Time { sec: 1_317_046_945, nanosec: 964_389_445 });
        assert_eq!(t.as_nanos(), 1_317_046_945_964_389_445);
        assert_eq!(Time { sec: -1, nanosec: 5 }.as_nanos(), 0);
    }
}
