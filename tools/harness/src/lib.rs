//! nines-harness: the march of nines (DESIGN.md section 6) as a library.
//!
//! A [`suite`] says what a release is evaluated on; [`eval`] runs it
//! (closed loop: the onboard pipeline drives the simulator,
//! [`closed_loop`]; open loop: the runtime replays logged drives against
//! their lidar labels, [`open_loop`]) into the SQLite [`ledger`], one row
//! per run; [`stats`] turns failures into rates, bounds and demonstrated
//! nines; [`report`] shows them and gates a candidate against its baseline.
//! Progress is reported through [`Progress`], so the CLI, tests (and the
//! planned data engine) each show it their own way.
//!
//! Depends on datasets, sim, the onboard runtime (without its release,
//! zenoh or OpenCV parts) and offboard (for open-loop distillation); never
//! on the CLI or rerun.

pub mod closed_loop;
pub mod collect;
pub mod engine;
mod error;
pub mod eval;
pub mod ledger;
pub mod open_loop;
mod progress;
pub mod report;
pub mod safety_driver;
pub mod stats;
pub mod suite;

pub use error::{Context, HarnessError, Result};
pub use progress::{Progress, Silent};
