//! `diagnostic_msgs`: runtime health.

use serde::{Deserialize, Serialize};

use super::Header;

/// `diagnostic_msgs/KeyValue`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
}

/// `diagnostic_msgs/DiagnosticStatus`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiagnosticStatus {
    /// `OK`, `WARN`, `ERROR` or `STALE`.
    pub level: u8,
    /// Component name.
    pub name: String,
    /// Human-readable state.
    pub message: String,
    /// Hardware identifier.
    pub hardware_id: String,
    /// Details.
    pub values: Vec<KeyValue>,
}

impl DiagnosticStatus {
    /// Level: all good.
    pub const OK: u8 = 0;
    /// Level: degraded.
    pub const WARN: u8 = 1;
    /// Level: failed.
    pub const ERROR: u8 = 2;
    /// Level: no recent data.
    pub const STALE: u8 = 3;
}

/// `diagnostic_msgs/DiagnosticArray`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiagnosticArray {
    /// Time.
    pub header: Header,
    /// One status per component.
    pub status: Vec<DiagnosticStatus>,
}
