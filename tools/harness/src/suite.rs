//! Suites: what a release is evaluated on (TOML under suites/). Closed-loop
//! entries are scenario families x seeds the driver under test drives in the
//! simulator; open-loop entries are logged drives (files, or a simulator
//! batch generated on first use) the model is replayed over; thresholds say
//! what counts as a miss.

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::{Context, HarnessError, Result};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// A suite file.
#[derive(Debug, Clone)]
pub struct Suite {
    /// Name (the file's `name`).
    pub name: String,
    /// What it is for.
    pub description: String,
    /// The file it came from.
    pub path: PathBuf,
    /// SHA-256 of the file's bytes, hex (stored with each release).
    pub digest: String,
    /// The simulated camera of closed-loop runs and generated drives.
    pub camera: SuiteCamera,
    /// What counts as a failure.
    pub thresholds: Thresholds,
    /// Closed-loop entries.
    pub closed_loop: Vec<ClosedLoop>,
    /// Open-loop entries.
    pub open_loop: Vec<OpenLoop>,
}

/// The simulated camera (the simulator's mounting and 90 degree lens).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteCamera {
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// How closed-loop frames reach the model: `jpeg` (the default) takes
    /// the path of a recorded drive's frames, the ones the model trained
    /// on; `raw` hands the rendered pixels over untouched.
    #[serde(default)]
    pub frames: FramePath,
    /// JPEG quality of those frames and of generated drives, 1..=100
    /// (90 by default, as `nines sim` records).
    #[serde(default = "default_jpeg_quality")]
    pub jpeg_quality: u8,
}

/// How a suite's closed-loop frames reach the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FramePath {
    /// Encoded and decoded as a recorded drive's frames are.
    #[default]
    Jpeg,
    /// The rendered pixels.
    Raw,
}

fn default_jpeg_quality() -> u8 {
    nines_sim::record::RecordOptions::default().jpeg_quality
}

impl SuiteCamera {
    /// The simulator's camera at this size.
    #[must_use]
    pub fn config(self) -> nines_sim::render::camera::CameraConfig {
        nines_sim::render::camera::CameraConfig {
            width: self.width,
            height: self.height,
            ..nines_sim::render::camera::CameraConfig::default()
        }
    }

    /// The JPEG quality closed-loop frames go through, if they do.
    #[must_use]
    pub fn jpeg(self) -> Option<u8> {
        (self.frames == FramePath::Jpeg).then_some(self.jpeg_quality)
    }
}

impl Default for SuiteCamera {
    fn default() -> Self {
        Self { width: 512, height: 256, frames: FramePath::Jpeg, jpeg_quality: default_jpeg_quality() }
    }
}

/// Failure thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// Open loop: the plan point compared with the driven path, s ahead.
    pub plan_horizon_s: f64,
    /// Open loop: a plan point farther than this from where the vehicle was
    /// at that time is a plan miss, m.
    pub plan_miss_m: f64,
    /// Open loop: a lead (lidar label) this close that the model does not
    /// predict is a missed lead, m.
    pub lead_range_m: f64,
    /// Open loop: lead probability at or above which the model predicts one.
    pub lead_probability: f64,
    /// Open loop: one run is this much of a drive, s.
    pub window_s: f64,
    /// Closed loop: a run ends this long after its first failure, s.
    pub end_after_failure_s: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            plan_horizon_s: 2.0,
            plan_miss_m: 2.0,
            lead_range_m: 40.0,
            lead_probability: 0.5,
            window_s: 60.0,
            end_after_failure_s: 2.0,
        }
    }
}

/// Scenario families x seeds.
#[derive(Debug, Clone)]
pub struct ClosedLoop {
    /// Families.
    pub families: Vec<String>,
    /// Seeds.
    pub seeds: Range<u64>,
    /// Run length, s (the family's own if `None`).
    pub duration_s: Option<f64>,
    /// Every run of this entry must pass (a failure fails the gate).
    pub must_pass: bool,
}

/// Logged drives the model is replayed over.
#[derive(Debug, Clone)]
pub enum OpenLoop {
    /// Drive files (absolute, or relative to the suite file when written).
    Drives(Vec<PathBuf>),
    /// Drives the expert records in the simulator on first use.
    Simulate {
        /// Families.
        families: Vec<String>,
        /// Seeds.
        seeds: Range<u64>,
        /// Drive length, s.
        duration_s: f64,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    camera: SuiteCamera,
    #[serde(default)]
    thresholds: Thresholds,
    #[serde(default)]
    closed_loop: Vec<ClosedLoopFile>,
    #[serde(default)]
    open_loop: Vec<OpenLoopFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClosedLoopFile {
    families: Families,
    seeds: String,
    duration_s: Option<f64>,
    #[serde(default)]
    must_pass: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Families {
    All(String),
    List(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenLoopFile {
    drives: Option<Vec<PathBuf>>,
    simulate: Option<SimulateFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SimulateFile {
    families: Families,
    seeds: String,
    duration_s: f64,
}

/// The first collection seed: training drives are simulated from seeds at
/// or above it, suites evaluate below it, so no suite run is ever a
/// training drive's scenario.
pub const COLLECTION_SEEDS: u64 = 1_000_000;

/// A suite's seeds: parsed, and below [`COLLECTION_SEEDS`].
fn eval_seeds(text: &str) -> Result<Range<u64>> {
    let range = parse_seeds(text)?;
    if range.end > COLLECTION_SEEDS {
        return Err(HarnessError::invalid(format!(
            "seeds {text:?} reach {COLLECTION_SEEDS} or beyond, which are collection seeds (training drives): \
             evaluate on seeds below {COLLECTION_SEEDS}"
        )));
    }
    Ok(range)
}

/// Parses `A..B` (B excluded) or a single seed.
pub fn parse_seeds(text: &str) -> Result<Range<u64>> {
    let bad =
        || format!("seeds {text:?}: write a range like \"0..100\" (end excluded) or one seed like \"7\"");
    let range = if let Some((a, b)) = text.split_once("..") {
        let seed = |t: &str| t.trim().parse::<u64>().map_err(|_| HarnessError::invalid(bad()));
        seed(a)?..seed(b)?
    } else {
        let one = text.trim().parse::<u64>().map_err(|_| HarnessError::invalid(bad()))?;
        one..one + 1
    };
    if range.is_empty() {
        return Err(HarnessError::invalid(format!(
            "seeds {text:?} is empty (the end is excluded): write a range like \"0..100\""
        )));
    }
    if range.end - range.start > MAX_SEEDS {
        return Err(HarnessError::invalid(format!(
            "seeds {text:?} is {} seeds; at most {MAX_SEEDS} per entry (split it, or shard the eval)",
            range.end - range.start
        )));
    }
    Ok(range)
}

/// Most seeds one range may name: a million runs of one family.
pub const MAX_SEEDS: u64 = 1_000_000;

/// Longest run or simulated drive, s: an hour.
pub const MAX_DURATION_S: f64 = 3600.0;

/// A duration key's value checked: positive, finite, at most [`MAX_DURATION_S`].
fn check_duration(field: &str, value: f64) -> Result<f64> {
    if value.is_finite() && value > 0.0 && value <= MAX_DURATION_S {
        Ok(value)
    } else {
        Err(HarnessError::invalid(format!(
            "{field} = {value}: must be a positive number of seconds, at most {MAX_DURATION_S}"
        )))
    }
}

fn families(given: Families, field: &str) -> Result<Vec<String>> {
    let known: Vec<&str> = nines_sim::FAMILIES.iter().map(|(name, _)| *name).collect();
    let list = match given {
        Families::All(all) if all == "all" => {
            return Ok(nines_sim::all_families().into_iter().map(str::to_owned).collect());
        }
        Families::All(other) => {
            return Err(HarnessError::invalid(format!(
                "{field} = {other:?}: write \"all\" or a list of families"
            )));
        }
        Families::List(list) => list,
    };
    if list.is_empty() {
        return Err(HarnessError::invalid(format!("{field} is empty: name at least one family, or \"all\"")));
    }
    for name in &list {
        if !known.contains(&name.as_str()) {
            return Err(HarnessError::invalid(format!(
                "{field}: unknown family {name:?}; the families are {}",
                known.join(", ")
            )));
        }
    }
    Ok(list)
}

impl Suite {
    /// Reads a suite file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading the suite {}", path.display()))?;
        let text = String::from_utf8(bytes.clone()).map_err(|_| HarnessError::Suite {
            path: path.to_path_buf(),
            detail: "not UTF-8 text; a suite is a TOML file (see suites/small.toml)".into(),
        })?;
        Self::parse(&text, path, &format!("{:x}", Sha256::digest(&bytes)))
            .with_context(|| format!("suite {}", path.display()))
    }

    fn parse(text: &str, path: &Path, digest: &str) -> Result<Self> {
        let file: SuiteFile = toml::from_str(text)?;
        let t = file.thresholds;
        for (name, value) in [
            ("plan_horizon_s", t.plan_horizon_s),
            ("plan_miss_m", t.plan_miss_m),
            ("lead_range_m", t.lead_range_m),
            ("window_s", t.window_s),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(HarnessError::invalid(format!(
                    "thresholds.{name} = {value}: must be a positive number"
                )));
            }
        }
        if !(0.0..=1.0).contains(&t.lead_probability)
            || t.end_after_failure_s.is_nan()
            || t.end_after_failure_s < 0.0
        {
            return Err(HarnessError::invalid(
                "thresholds: lead_probability must lie in 0..=1 and end_after_failure_s must be >= 0",
            ));
        }
        if !(16..=4096).contains(&file.camera.width) || !(16..=4096).contains(&file.camera.height) {
            return Err(HarnessError::invalid(format!(
                "camera: {}x{} must each lie in 16..=4096",
                file.camera.width, file.camera.height
            )));
        }
        if !(1..=100).contains(&file.camera.jpeg_quality) {
            return Err(HarnessError::invalid(format!(
                "camera.jpeg_quality = {}: must lie in 1..=100",
                file.camera.jpeg_quality
            )));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let mut closed_loop = Vec::new();
        for (i, entry) in file.closed_loop.into_iter().enumerate() {
            let field = format!("closed_loop[{i}]");
            if let Some(d) = entry.duration_s {
                check_duration(&format!("{field}.duration_s"), d)?;
            }
            closed_loop.push(ClosedLoop {
                families: families(entry.families, &format!("{field}.families"))?,
                seeds: eval_seeds(&entry.seeds).with_context(|| format!("{field}.seeds"))?,
                duration_s: entry.duration_s,
                must_pass: entry.must_pass,
            });
        }
        let mut open_loop = Vec::new();
        for (i, entry) in file.open_loop.into_iter().enumerate() {
            let field = format!("open_loop[{i}]");
            open_loop.push(match (entry.drives, entry.simulate) {
                (Some(drives), None) => OpenLoop::Drives(drives.into_iter().map(|d| base.join(d)).collect()),
                (None, Some(sim)) => {
                    check_duration(&format!("{field}.simulate.duration_s"), sim.duration_s)?;
                    OpenLoop::Simulate {
                        families: families(sim.families, &format!("{field}.simulate.families"))?,
                        seeds: eval_seeds(&sim.seeds).with_context(|| format!("{field}.simulate.seeds"))?,
                        duration_s: sim.duration_s,
                    }
                }
                _ => return Err(HarnessError::invalid(format!(
                    "{field}: give either `drives = [...]` or `simulate = {{ families, seeds, duration_s }}`"
                ))),
            });
        }
        if closed_loop.is_empty() && open_loop.is_empty() {
            return Err(HarnessError::invalid(
                "the suite has no runs: add a [[closed_loop]] or an [[open_loop]] entry (see suites/small.toml)",
            ));
        }
        Ok(Self {
            name: file.name,
            description: file.description,
            path: path.to_path_buf(),
            digest: digest.to_string(),
            camera: file.camera,
            thresholds: t,
            closed_loop,
            open_loop,
        })
    }

    /// Every closed-loop run: (family, seed, duration, must pass), in suite order.
    #[must_use]
    pub fn closed_runs(&self) -> Vec<ClosedRun> {
        let mut runs = Vec::new();
        for entry in &self.closed_loop {
            for family in &entry.families {
                for seed in entry.seeds.clone() {
                    runs.push(ClosedRun {
                        family: family.clone(),
                        seed,
                        duration_s: entry.duration_s,
                        must_pass: entry.must_pass,
                    });
                }
            }
        }
        runs
    }

    /// Where the open-loop drives are (generated ones under `cache`), and
    /// the ones still to generate.
    #[must_use]
    pub fn open_drives(&self, cache: &Path) -> (Vec<PathBuf>, Vec<PendingDrive>) {
        let mut drives = Vec::new();
        let mut missing = Vec::new();
        for entry in &self.open_loop {
            match entry {
                OpenLoop::Drives(paths) => drives.extend(paths.iter().cloned()),
                OpenLoop::Simulate { families, seeds, duration_s } => {
                    for family in families {
                        for seed in seeds.clone() {
                            let (w, h) = (self.camera.width, self.camera.height);
                            let path = cache.join(format!("{family}-{seed}-{duration_s}s-{w}x{h}.mcap"));
                            if !path.exists() {
                                missing.push(PendingDrive {
                                    family: family.clone(),
                                    seed,
                                    duration_s: *duration_s,
                                    path: path.clone(),
                                });
                            }
                            drives.push(path);
                        }
                    }
                }
            }
        }
        (drives, missing)
    }
}

/// An open-loop drive the simulator has yet to record.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingDrive {
    /// Family.
    pub family: String,
    /// Seed.
    pub seed: u64,
    /// Length, s.
    pub duration_s: f64,
    /// Where it goes.
    pub path: PathBuf,
}

/// One closed-loop run of a suite.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedRun {
    /// Family.
    pub family: String,
    /// Seed.
    pub seed: u64,
    /// Length, s (the family's own if `None`).
    pub duration_s: Option<f64>,
    /// Must pass.
    pub must_pass: bool,
}

impl ClosedRun {
    /// The run's key in the ledger.
    #[must_use]
    pub fn key(&self) -> String {
        format!("closed/{}/{}", self.family, self.seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Suite> {
        Suite::parse(text, Path::new("suites/x.toml"), "d")
    }

    #[test]
    fn entries_expand_into_runs() {
        let suite = parse(
            "name = \"x\"\n[[closed_loop]]\nfamilies = [\"straight\", \"curves\"]\nseeds = \"0..3\"\n\
             [[closed_loop]]\nfamilies = \"all\"\nseeds = \"7\"\nmust_pass = true\nduration_s = 10\n\
             [[open_loop]]\ndrives = [\"a.mcap\"]\n\
             [[open_loop]]\nsimulate = { families = [\"lead_brake\"], seeds = \"0..2\", duration_s = 60 }\n",
        )
        .unwrap();
        let runs = suite.closed_runs();
        assert_eq!(runs.len(), 6 + nines_sim::all_families().len());
        assert_eq!(runs[4].key(), "closed/curves/1");
        assert!(runs.last().unwrap().must_pass && !runs[0].must_pass);
        let cache = Path::new("/nowhere");
        let (drives, missing) = suite.open_drives(cache);
        assert_eq!(drives[0], Path::new("suites/a.mcap"));
        assert_eq!(missing.len(), 2);
        assert_eq!(drives[2], cache.join("lead_brake-1-60s-512x256.mcap"));
    }

    #[test]
    fn mistakes_name_the_field() {
        let err = |text: &str| format!("{:#}", parse(text).unwrap_err());
        assert!(
            err("name = \"x\"\n[[closed_loop]]\nfamilies = [\"mars\"]\nseeds = \"0..2\"\n")
                .contains("closed_loop[0].families: unknown family \"mars\"")
        );
        assert!(
            err("name = \"x\"\n[[closed_loop]]\nfamilies = \"all\"\nseeds = \"5..2\"\n")
                .contains("closed_loop[0].seeds")
        );
        assert!(err("name = \"x\"\n[thresholds]\nplan_miss_m = -1\n").contains("thresholds.plan_miss_m"));
        assert!(err("name = \"x\"\n[[open_loop]]\n").contains("open_loop[0]: give either"));
        assert!(err("name = \"x\"\nseed = 3\n").contains("unknown field"));
    }

    #[test]
    fn what_a_suite_may_ask_is_bounded() {
        let err = |text: &str| format!("{:#}", parse(text).unwrap_err());
        // A range that would allocate gigabytes, and one that is merely too large for eval.
        let huge = err("name = \"x\"\n[[closed_loop]]\nfamilies = \"all\"\nseeds = \"0..4000000000\"\n");
        assert!(huge.contains("closed_loop[0].seeds") && huge.contains("at most 1000000"), "{huge}");
        let long =
            err("name = \"x\"\n[[closed_loop]]\nfamilies = \"all\"\nseeds = \"0..2\"\nduration_s = 1e9\n");
        assert!(
            long.contains("closed_loop[0].duration_s = 1000000000") && long.contains("at most 3600"),
            "{long}"
        );
        let open = err(
            "name = \"x\"\n[[open_loop]]\nsimulate = { families = [\"straight\"], seeds = \"0..1\", duration_s = inf }\n",
        );
        assert!(open.contains("open_loop[0].simulate.duration_s"), "{open}");
        assert!(err("name = \"x\"\n").contains("the suite has no runs"));
        assert!(
            parse("name = \"x\"\n[[closed_loop]]\nfamilies = \"all\"\nseeds = \"0..2\"\nduration_s = 3600\n")
                .is_ok()
        );
    }
}
