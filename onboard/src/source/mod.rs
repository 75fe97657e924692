//! Frame sources. A source runs on the capture thread and pushes what it
//! reads: camera frames (decoded to RGB, with their capture stamp), ego
//! speed, and the messages the recorder keeps as the drive's inputs.
//!
//! * [`drive::DriveSource`]: an MCAP drive, in lockstep (every frame, as fast
//!   as the runtime goes) or at the recorded rate.
//! * [`video::VideoSource`] (feature `opencv`): OpenCV's VideoCapture on a
//!   V4L2 device, a GStreamer pipeline or a video file.
//! * [`zenoh::ZenohSource`] (feature `zenoh`): the camera and odometry from
//!   the robot's zenoh network, as ROS 2 nodes on rmw_zenoh publish them.

pub mod drive;
#[cfg(feature = "opencv")]
pub mod video;
#[cfg(feature = "zenoh")]
pub mod zenoh;

use std::time::Instant;

use nines_datasets::calib::CameraModel;
use nines_datasets::geometry::Iso3;

use crate::Result;
use crate::recorder::Record;

/// A decoded camera frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Capture stamp, ns (the source's clock).
    pub stamp_ns: u64,
    /// When the runtime got it (latency is measured from here).
    pub captured: Instant,
    /// Packed RGB8; empty when the frame could not be decoded.
    pub rgb: Vec<u8>,
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
}

impl Frame {
    /// Whether the frame decoded.
    #[must_use]
    pub fn ok(&self) -> bool {
        !self.rgb.is_empty()
    }
}

/// What a source pushes.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "items move through a four-slot channel; boxing would allocate per frame"
)]
pub enum Item {
    /// A camera frame.
    Frame(Frame),
    /// Ego speed from odometry, m/s, at a stamp.
    Speed {
        /// Stamp, ns.
        stamp_ns: u64,
        /// Speed, m/s.
        speed_mps: f64,
    },
    /// An input message for the recorder.
    Record(Record),
}

/// How a recorded source is played.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// Every frame, as fast as the runtime consumes them.
    Lockstep,
    /// At the recorded rate.
    Realtime,
}

/// A camera.
pub trait Source: Send {
    /// The source as given, for messages.
    fn name(&self) -> &str;
    /// The calibration and mounting the source itself carries (an MCAP
    /// drive's CameraInfo and /tf_static), if any.
    fn calibration(&self) -> Option<(CameraModel, Iso3)>;
    /// Whether the source is live (a camera): it paces itself and its
    /// stamps are the system clock.
    fn live(&self) -> bool;
    /// Reads until the end (or until `push` returns false), pushing items.
    fn run(&mut self, pacing: Pacing, push: &mut dyn FnMut(Item) -> bool) -> Result<()>;
}

/// Opens `spec`: a `.mcap` file, or (with OpenCV) a video file, a V4L2
/// device or a GStreamer pipeline.
pub fn open(spec: &str, camera_topic: &str, fps: f64) -> Result<Box<dyn Source>> {
    if spec == "zenoh" {
        return Err(crate::OnboardError::Source {
            source_name: spec.to_owned(),
            detail: if cfg!(feature = "zenoh") {
                "a zenoh camera is heard through a node: nines-onboard opens one from [zenoh]; \
                 in code, build a source::zenoh::ZenohSource"
                    .into()
            } else {
                "this nines-onboard was built without the `zenoh` feature; rebuild with default features"
                    .into()
            },
        });
    }
    if std::path::Path::new(spec).extension().is_some_and(|e| e.eq_ignore_ascii_case("mcap")) {
        return Ok(Box::new(drive::DriveSource::open(std::path::Path::new(spec), camera_topic)?));
    }
    #[cfg(feature = "opencv")]
    {
        Ok(Box::new(video::VideoSource::open(spec, fps)?))
    }
    #[cfg(not(feature = "opencv"))]
    {
        let _ = fps;
        Err(crate::OnboardError::Source {
            source_name: spec.to_owned(),
            detail:
                "this nines-onboard was built without the `opencv` feature, so it reads MCAP drives only; \
                     rebuild with default features for cameras and video files"
                    .into(),
        })
    }
}

/// Nanoseconds since the epoch now (live cameras' stamps).
#[must_use]
pub fn system_now_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}
