//! `nines_msgs`: events, model outputs and object boxes (definitions in
//! `datasets/msg/nines_msgs`).

use serde::{Deserialize, Serialize};

use super::{Header, Pose, Time, Twist, Vector3};

/// What kind of moment an [`Event`] marks (`nines_msgs/Event.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum EventKind {
    /// A run failure (collision, off-road, ...).
    Failure = 0,
    /// A safety driver or operator took over.
    Intervention = 1,
    /// The safety monitor brought the vehicle to a controlled stop.
    SafeStop = 2,
    /// Anything else worth marking.
    Note = 3,
    /// A disturbance injected into the executed command while collecting (DART).
    Disturbance = 4,
}

/// `nines_msgs/Event`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Time of the event.
    pub header: Header,
    /// An [`EventKind`] as u8.
    pub kind: u8,
    /// Failure category (see DESIGN.md section 6) or free text for notes.
    pub category: String,
    /// Human-readable detail.
    pub detail: String,
    /// Category-specific magnitude; 0 if none.
    pub value: f64,
}

/// Who controls the vehicle (`nines_msgs/ControlSource.source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Controller {
    /// A human driver, or the simulator's expert in its seat: imitated.
    Human = 0,
    /// The camera-only network through the onboard runtime: never imitated.
    Model = 1,
    /// A safety driver after taking over from the model: imitated (the
    /// recovery is what the model lacks).
    SafetyDriver = 2,
}

impl Controller {
    /// From the message's `source` field; `None` for a value this build does not know.
    #[must_use]
    pub fn from_u8(value: u8) -> Option<Self> {
        match value {
            0 => Some(Self::Human),
            1 => Some(Self::Model),
            2 => Some(Self::SafetyDriver),
            _ => None,
        }
    }

    /// Short name, as `nines inspect` prints it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Human => "human",
            Self::Model => "model",
            Self::SafetyDriver => "safety_driver",
        }
    }
}

/// `nines_msgs/ControlSource`: who was in control during one control
/// period, and the disturbance injected into the executed command, if any.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ControlSource {
    /// The control period's time and `base_link`.
    pub header: Header,
    /// A [`Controller`] as u8.
    pub source: u8,
    /// True while a disturbance is injected.
    pub disturbed: bool,
    /// Injected steering offset, rad.
    pub steering_offset_rad: f32,
    /// Injected factor on the commanded speed (1 = none).
    pub speed_factor: f32,
}

impl ControlSource {
    /// How long a drive's only control period lasts, ns (the 20 Hz control rate).
    pub const LONE_PERIOD_NANOS: u64 = 50_000_000;

    /// Whether a plan label may imitate this period: a human, the expert or a
    /// safety driver drove, and nothing was injected.
    #[must_use]
    pub fn imitable(&self) -> bool {
        !self.disturbed && Controller::from_u8(self.source).is_some_and(|c| c != Controller::Model)
    }

    /// The [start, end) of each control period, ns, from the periods' stamps
    /// in time order: a period lasts until the next one starts, the last as
    /// long as the one before it, a lone one [`Self::LONE_PERIOD_NANOS`].
    #[must_use]
    pub fn periods(stamps: &[u64]) -> Vec<(u64, u64)> {
        stamps
            .iter()
            .enumerate()
            .map(|(i, &start)| {
                let length = match (stamps.get(i + 1), i.checked_sub(1).map(|j| stamps[j])) {
                    (Some(&next), _) => next.saturating_sub(start),
                    (None, Some(before)) => start.saturating_sub(before),
                    (None, None) => Self::LONE_PERIOD_NANOS,
                };
                (start, start + length)
            })
            .collect()
    }
}

/// `nines_msgs/LaneState`: where the vehicle is against its lane centre
/// (simulator ground truth; statistics only, never a label).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LaneState {
    /// The control period's time and `base_link`.
    pub header: Header,
    /// Left of the lane centre, m.
    pub lateral_offset_m: f32,
    /// Turned left of the lane's heading, rad.
    pub heading_error_rad: f32,
}

/// `nines_msgs/ModelOutput`: what the onboard network predicted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelOutput {
    /// Output time and `base_link`.
    pub header: Header,
    /// Digest of the model.
    pub model_digest: String,
    /// Capture stamp of the newest input frame.
    pub input_stamp: Time,
    /// Plan times, s.
    pub plan_time_s: Vec<f32>,
    /// Plan x in base_link, m.
    pub plan_x_m: Vec<f32>,
    /// Plan y in base_link, m.
    pub plan_y_m: Vec<f32>,
    /// Plan speed, m/s.
    pub plan_speed_mps: Vec<f32>,
    /// Probability that a lead obstacle is present.
    pub lead_probability: f32,
    /// Distance to the lead along the path, m.
    pub lead_distance_m: f32,
    /// Lead speed relative to the ego, m/s.
    pub lead_relative_speed_mps: f32,
    /// Capture to output, s.
    pub latency_s: f32,
}

/// `nines_msgs/Object`: an annotated or ground-truth box.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Object {
    /// Track id (0 if none).
    pub id: u32,
    /// Class, lower case.
    pub label: String,
    /// Box centre and heading.
    pub pose: Pose,
    /// Length, width, height, m.
    pub size: Vector3,
    /// Velocity.
    pub velocity: Twist,
    /// Fraction outside the image, -1 unknown.
    pub truncation: f32,
    /// 0 visible .. 3 unknown.
    pub occlusion: u8,
    /// x1, y1, x2, y2 in the front camera, pixels; zeros if none.
    pub box_2d: [f32; 4],
}

/// `nines_msgs/ObjectArray`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObjectArray {
    /// Time and the frame the boxes are in.
    pub header: Header,
    /// Boxes.
    pub objects: Vec<Object>,
}
