//! The nines harness (DESIGN.md section 6): suites, closed- and open-loop
//! runs, the SQLite ledger, the statistics, and the report and gate built
//! on them.

pub mod closed_loop;
pub mod eval;
pub mod ledger;
pub mod open_loop;
pub mod report;
pub mod stats;
pub mod suite;
