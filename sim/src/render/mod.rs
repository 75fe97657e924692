//! Sensors by ray casting against one scene: what the camera sees and what
//! the lidar measures come from the same geometry, so lidar labels and
//! camera images agree the way real sensors do.

pub mod camera;
mod grid;
pub mod lidar;
mod scene;
mod shade;

pub use scene::{Hit, Material, Scene};
