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
