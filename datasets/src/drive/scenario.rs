//! The scenario a simulated drive was recorded in, kept in the drive as the
//! MCAP metadata record `nines_scenario`: distillation copies it into the
//! label index, training into the model card, and eval marks a suite run
//! whose scenario a model trained on (a leak).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::DriveReader;
use crate::error::{DatasetError, Result};

/// The name of the metadata record.
pub const METADATA_NAME: &str = "nines_scenario";

/// A simulated drive's scenario: its family and seed fix the road, the
/// actors and the weather; the duration and the disturbance profile only
/// how long and how it was driven.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriveScenario {
    /// Scenario family.
    pub family: String,
    /// Seed.
    pub seed: u64,
    /// Simulated length, s.
    pub duration_s: f64,
    /// Disturbance profile of the collecting driver (`none` for none).
    pub disturb: String,
}

impl DriveScenario {
    /// Whether `family` at `seed` is this scenario (same road, actors and
    /// weather, however long or however disturbed).
    #[must_use]
    pub fn is(&self, family: &str, seed: u64) -> bool {
        self.family == family && self.seed == seed
    }

    /// The metadata record's entries.
    #[must_use]
    pub fn to_metadata(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("family".to_owned(), self.family.clone()),
            ("seed".to_owned(), self.seed.to_string()),
            ("duration_s".to_owned(), self.duration_s.to_string()),
            ("disturb".to_owned(), self.disturb.clone()),
        ])
    }

    /// The scenario `reader`'s drive records; `None` for a drive that is
    /// not simulated (a fleet log, an imported dataset).
    pub fn read(reader: &DriveReader) -> Result<Option<Self>> {
        let Some(entries) = reader.metadata(METADATA_NAME)? else { return Ok(None) };
        let bad = |key: &str, problem: String| {
            DatasetError::invalid(reader.path(), format!("metadata {METADATA_NAME}.{key}"), problem)
        };
        let field = |key: &str| {
            entries.get(key).ok_or_else(|| {
                bad(key, "missing; a simulated drive records family, seed, duration_s and disturb".into())
            })
        };
        Ok(Some(Self {
            family: field("family")?.clone(),
            seed: field("seed")?.parse().map_err(|e| bad("seed", format!("not a whole number: {e}")))?,
            duration_s: field("duration_s")?
                .parse()
                .map_err(|e| bad("duration_s", format!("not a number: {e}")))?,
            disturb: field("disturb")?.clone(),
        }))
    }
}
