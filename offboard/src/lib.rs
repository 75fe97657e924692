//! nines-offboard: the offboard half of train-with-lidar. [`distill`] turns
//! each drive's lidar and poses into the labels a camera-only network learns
//! from (depth, lead obstacle, future path) and [`labels`] stores them as one
//! safetensors shard per drive plus a JSON index. [`model`], [`data`] and
//! [`training`] train the camera-only network on them with burn,
//! [`metrics`] scores it, and [`export`] writes it as ONNX with the model
//! contract inside and checks it against ONNX Runtime (through the onboard runtime's loader,
//! `nines_onboard::ort_env`, so the parity check runs the library the robot runs).
//!
//! Depends on nines-datasets and nines-kernels; never on the simulator (whose
//! ground truth is only ever used to *score* labels, by the caller). It uses
//! the onboard runtime only for its ONNX Runtime loader; the runtime never
//! depends on this crate.

pub mod data;
pub mod distill;
mod error;
pub mod export;
pub mod labels;
pub mod metrics;
pub mod model;
pub mod training;
pub mod viewpoint;

pub use error::{OffboardError, Result};
