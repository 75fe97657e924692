//! The nines harness (DESIGN.md section 6). So far its statistics; suites,
//! `nines eval`, the ledger, `report` and `gate` build on them.

pub mod stats;
