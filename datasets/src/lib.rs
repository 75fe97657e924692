//! nines-datasets: the vocabulary every other nines crate speaks.
//!
//! ROS 2 message types with their `ros2msg` schemas and CDR encoding, drive
//! logs in MCAP (writer, indexed reader, recovery of cut files), the frame
//! synchroniser, camera calibration and extrinsics, and importers for public
//! datasets. It depends on no other nines crate and on nothing heavy
//! (no OpenCV, no ONNX Runtime, no GPU): everything else builds on it.

pub mod calib;
pub mod cdr;
pub mod contract;
pub mod drive;
pub mod error;
pub mod geometry;
pub mod image;
pub mod import;
pub mod inspect;
pub mod msg;
pub mod pointcloud;
pub mod sync;
pub mod topics;

pub use error::{DatasetError, Result};
