//! nines-offboard: the offboard half of train-with-lidar. [`distill`] turns
//! each drive's lidar and poses into the labels a camera-only network learns
//! from (depth, lead obstacle, future path) and [`labels`] stores them as one
//! safetensors shard per drive plus a JSON index.
//!
//! Depends on nines-datasets and nines-kernels; never on the simulator (whose
//! ground truth is only ever used to *score* labels, by the caller) or on
//! the onboard runtime.

pub mod distill;
mod error;
pub mod labels;

pub use error::{OffboardError, Result};
