//! nines-sim: a simulator whose drives look like the data-collection
//! vehicle's. Procedural roads and actors, a kinematic-bicycle ego, an
//! expert driver, scenario families as data and closed-loop stepping.
//!
//! It talks to drivers only through messages (commands in, drives out), the
//! way a real car would, and depends on nines-datasets only: never on the
//! onboard runtime or training code.

pub mod actors;
pub mod disturb;
pub mod error;
pub mod events;
pub mod expert;
pub mod geometry;
pub mod record;
pub mod render;
pub mod road;
pub mod scenario;
pub mod vehicle;
pub mod world;

pub use error::{Result, SimError};
pub use scenario::{FAMILIES, FamilySpec, Scenario, all_families, family};
pub use world::{Sim, StepResult};
