//! Releases on a robot: fleet keys, signed bundles (what `nines bundle`
//! writes), and the atomic install with its health check and rollback
//! (what `nines flash` and `nines-onboard install` run). docs/FLASH.md has
//! the whole story.

pub mod bundle;
pub mod health;
pub mod install;
pub mod keys;
pub mod layout;
pub mod service;
pub mod status;
