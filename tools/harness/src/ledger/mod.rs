//! The ledger: one SQLite file with releases, runs, events and metrics, so
//! releases can be compared long after they were evaluated. A run is
//! committed the moment it finishes: an interrupted eval loses nothing and
//! resumes where it stopped.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::{Context, HarnessError, Result};
use rusqlite::{Connection, OptionalExtension, params};

/// Bumped when the schema changes. A file of an older version is upgraded
/// in place by [`UPGRADES`] (nothing recorded is lost); any other is refused.
const SCHEMA_VERSION: i64 = 2;

/// The statements that take a ledger from version `i + 1` to `i + 2`.
const UPGRADES: &[&str] = &[
    // 1 -> 2: runs whose scenario the model trained on (every earlier run: not known, so not marked).
    "ALTER TABLE runs ADD COLUMN seen_in_training INTEGER NOT NULL DEFAULT 0;",
];

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS releases (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    suite TEXT NOT NULL,
    suite_digest TEXT NOT NULL,
    policy TEXT NOT NULL,
    model_path TEXT,
    model_digest TEXT,
    contract TEXT,
    tool_version TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    release_id INTEGER NOT NULL REFERENCES releases(id),
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    family TEXT NOT NULL,
    seed INTEGER,
    drive TEXT,
    must_pass INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    category TEXT,
    km REAL NOT NULL,
    hours REAL NOT NULL,
    kept_drive TEXT,
    replay TEXT,
    seen_in_training INTEGER NOT NULL DEFAULT 0,
    UNIQUE (release_id, key)
);
CREATE TABLE IF NOT EXISTS events (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    time_s REAL NOT NULL,
    category TEXT NOT NULL,
    detail TEXT NOT NULL,
    value REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    name TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (run_id, name)
);
";

/// Who drove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// An exported model through the onboard pipeline.
    Model,
    /// The simulator's privileged reference driver.
    Expert,
}

impl Policy {
    /// Name in the ledger.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Model => "model",
            Self::Expert => "expert",
        }
    }
}

/// A release: one evaluated model (or the expert) on one suite.
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    /// Row id.
    pub id: i64,
    /// Name given with `--release`.
    pub name: String,
    /// When it was first evaluated (UTC, RFC 3339).
    pub created_at: String,
    /// Suite name.
    pub suite: String,
    /// SHA-256 of the suite file.
    pub suite_digest: String,
    /// `model` or `expert`.
    pub policy: String,
    /// The model file evaluated.
    pub model_path: Option<String>,
    /// Its digest (SHA-256 of the ONNX file).
    pub model_digest: Option<String>,
    /// Its contract, JSON.
    pub contract: Option<String>,
    /// The nines version that evaluated it.
    pub tool_version: String,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No failure.
    Pass,
    /// At least one failure.
    Fail,
    /// Not run by this policy (the expert on open-loop entries).
    Skipped,
}

impl Outcome {
    /// Name in the ledger.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Skipped => "skipped",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "pass" => Self::Pass,
            "fail" => Self::Fail,
            "skipped" => Self::Skipped,
            other => {
                return Err(HarnessError::invalid(format!("unknown run outcome {other:?} in the ledger")));
            }
        })
    }
}

/// One failure event of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEvent {
    /// Time into the run, s.
    pub time_s: f64,
    /// Failure category (DESIGN.md section 6).
    pub category: String,
    /// What happened.
    pub detail: String,
    /// Magnitude (TTC s, deceleration, distance m), 0 if none.
    pub value: f64,
}

/// One run's result.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// Key, unique in a release: `closed/<family>/<seed>` or `open/<drive>/<window>`.
    pub key: String,
    /// `closed` or `open`.
    pub kind: String,
    /// Family (closed loop) or `open:<drive stem>`.
    pub family: String,
    /// Seed (closed loop).
    pub seed: Option<u64>,
    /// The logged drive (open loop).
    pub drive: Option<String>,
    /// A failure fails the gate.
    pub must_pass: bool,
    /// Pass, fail or skipped.
    pub outcome: Outcome,
    /// Category of the first failure.
    pub category: Option<String>,
    /// Distance driven, km.
    pub km: f64,
    /// Time driven, h.
    pub hours: f64,
    /// The failed run's drive on disk.
    pub kept_drive: Option<String>,
    /// The command that replays it.
    pub replay: Option<String>,
    /// Failures, in time order.
    pub events: Vec<RunEvent>,
    /// Metrics by name.
    pub metrics: Vec<(String, f64)>,
    /// The model trained on this run's scenario (its card lists it): the
    /// report counts it apart from the nines.
    pub seen_in_training: bool,
}

/// An open ledger file.
pub struct Ledger {
    conn: Connection,
    path: PathBuf,
}

impl RunRecord {
    /// The run with only finite numbers, as SQLite stores them (a NaN
    /// would become NULL and fail the insert), and what was changed: a
    /// non-finite km, hours or event value becomes 0 and a non-finite
    /// metric is left out. A run that held any is never a pass: it fails
    /// as a `system_fault` naming the values.
    #[must_use]
    pub fn finite(&self) -> (Self, Vec<String>) {
        let mut run = self.clone();
        let mut notes = Vec::new();
        for (name, value) in [("km", &mut run.km), ("hours", &mut run.hours)] {
            if !value.is_finite() {
                notes.push(format!("{name} = {value}, recorded as 0"));
                *value = 0.0;
            }
        }
        for event in &mut run.events {
            if !event.value.is_finite() {
                notes.push(format!("event {} value = {}, recorded as 0", event.category, event.value));
                event.value = 0.0;
            }
            if !event.time_s.is_finite() {
                notes.push(format!("event {} time = {}, recorded as 0", event.category, event.time_s));
                event.time_s = 0.0;
            }
        }
        run.metrics.retain(|(name, value)| {
            let keep = value.is_finite();
            if !keep {
                notes.push(format!("metric {name} = {value}, left out"));
            }
            keep
        });
        if !notes.is_empty() && run.outcome == Outcome::Pass {
            run.outcome = Outcome::Fail;
            run.category = Some("system_fault".into());
            run.events.insert(
                0,
                RunEvent {
                    time_s: 0.0,
                    category: "system_fault".into(),
                    detail: format!("non-finite values: {}", notes.join("; ")),
                    value: 0.0,
                },
            );
        }
        (run, notes)
    }
}

impl Ledger {
    /// Removes a release and every run, event and metric of it, in one
    /// transaction; returns how many runs went. Its kept drives stay on
    /// disk. Errors if there is no such release.
    pub fn remove_release(&mut self, name: &str) -> Result<usize> {
        let Some(release) = self.release(name)? else {
            return Err(HarnessError::Ledger {
                path: self.path.clone(),
                detail: format!(
                    "no release {name:?} to remove (`nines report --ledger {}` lists them)",
                    self.path.display()
                ),
            });
        };
        let tx = self.conn.transaction()?;
        let runs = "SELECT id FROM runs WHERE release_id = ?1";
        tx.execute(&format!("DELETE FROM metrics WHERE run_id IN ({runs})"), [release.id])?;
        tx.execute(&format!("DELETE FROM events WHERE run_id IN ({runs})"), [release.id])?;
        let removed = tx.execute("DELETE FROM runs WHERE release_id = ?1", [release.id])?;
        tx.execute("DELETE FROM releases WHERE id = ?1", [release.id])?;
        tx.commit()?;
        Ok(removed)
    }

    /// Opens (or creates) a ledger.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let conn =
            Connection::open(path).with_context(|| format!("opening the ledger {}", path.display()))?;
        let ledger = Self { conn, path: path.to_path_buf() };
        ledger.init()?;
        Ok(ledger)
    }

    /// Opens an existing ledger (reports and gates never create one).
    pub fn open_existing(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(HarnessError::Ledger {
                path: path.to_path_buf(),
                detail: format!("no such ledger; run `nines eval ... --ledger {}` first", path.display()),
            });
        }
        Self::open(path)
    }

    /// Opens an existing ledger read-only, as reports and gates do: they
    /// never write to it, upgrade it or recreate what is missing. A ledger
    /// missing a table, or of an older schema, is refused with the fix.
    pub fn open_read_only(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Self::open_existing(path);
        }
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .with_context(|| format!("opening the ledger {} read-only", path.display()))?;
        let ledger = Self { conn, path: path.to_path_buf() };
        let bad = |detail: String| HarnessError::Ledger { path: path.to_path_buf(), detail };
        let damaged = || format!("{}: not a SQLite ledger (or it is damaged)", path.display());
        let version: i64 =
            ledger.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).with_context(damaged)?;
        if (1..SCHEMA_VERSION).contains(&version) {
            return Err(bad(format!(
                "schema version {version}; any `nines eval --ledger {}` upgrades it in place (nothing is lost)",
                path.display()
            )));
        }
        if version != SCHEMA_VERSION {
            return Err(bad(format!(
                "not a nines ledger of schema version {SCHEMA_VERSION} (user_version {version})"
            )));
        }
        for table in ["releases", "runs", "events", "metrics"] {
            let found: i64 = ledger
                .conn
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                    [table],
                    |r| r.get(0),
                )
                .with_context(damaged)?;
            if found == 0 {
                return Err(bad(format!(
                    "the table `{table}` is missing: the ledger is damaged; restore it from a copy"
                )));
            }
        }
        Ok(ledger)
    }

    fn init(&self) -> Result<()> {
        let damaged = || format!("{}: not a SQLite ledger (or it is damaged)", self.path.display());
        let version: i64 =
            self.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).with_context(damaged)?;
        let tables: i64 = self
            .conn
            .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table'", [], |r| r.get(0))
            .with_context(damaged)?;
        if tables > 0 && (1..SCHEMA_VERSION).contains(&version) {
            for (i, upgrade) in UPGRADES.iter().enumerate().skip(usize::try_from(version - 1).unwrap_or(0)) {
                self.conn
                    .execute_batch(&format!("BEGIN; {upgrade} PRAGMA user_version = {}; COMMIT;", i + 2))
                    .with_context(|| {
                        format!(
                            "{}: upgrading the ledger from schema version {} (is it read-only?)",
                            self.path.display(),
                            i + 1
                        )
                    })?;
            }
        } else if tables > 0 && version != SCHEMA_VERSION {
            return Err(HarnessError::Ledger {
                path: self.path.clone(),
                detail: format!(
                    "not a nines ledger of schema version {SCHEMA_VERSION} (it has user_version {version}); \
                     give a new --ledger path"
                ),
            });
        }
        self.conn.execute_batch(SCHEMA).with_context(damaged)?;
        self.conn
            .execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}; PRAGMA foreign_keys = ON;"))
            .with_context(|| {
                format!("{}: writing the ledger's schema version (is it read-only?)", self.path.display())
            })?;
        Ok(())
    }

    /// The file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The release called `name`.
    pub fn release(&self, name: &str) -> Result<Option<Release>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {RELEASE_COLUMNS} FROM releases WHERE name = ?1"),
                [name],
                release_row,
            )
            .optional()?)
    }

    /// Every release, oldest first.
    pub fn releases(&self) -> Result<Vec<Release>> {
        let mut stmt =
            self.conn.prepare(&format!("SELECT {RELEASE_COLUMNS} FROM releases ORDER BY created_at, id"))?;
        let rows = stmt.query_map([], release_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Adds `release`, or returns the existing one of that name if it is
    /// the same model on the same suite (an eval resuming). Anything else
    /// under an existing name is refused: nothing recorded is overwritten.
    pub fn add_release(&self, release: &Release) -> Result<Release> {
        if let Some(existing) = self.release(&release.name)? {
            if existing.suite_digest != release.suite_digest
                || existing.model_digest != release.model_digest
                || existing.policy != release.policy
            {
                return Err(HarnessError::Ledger {
                    path: self.path.clone(),
                    detail: format!(
                        "release {:?} is already here with a different model or suite ({} on {}); \
                         evaluate under a new --release name",
                        release.name,
                        existing.model_path.as_deref().unwrap_or(&existing.policy),
                        existing.suite
                    ),
                });
            }
            return Ok(existing);
        }
        self.conn.execute(
            "INSERT INTO releases (name, created_at, suite, suite_digest, policy, model_path, model_digest, contract, tool_version)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                release.name,
                release.created_at,
                release.suite,
                release.suite_digest,
                release.policy,
                release.model_path,
                release.model_digest,
                release.contract,
                release.tool_version
            ],
        )?;
        self.release(&release.name)?.ok_or_else(|| HarnessError::Ledger {
            path: self.path.clone(),
            detail: format!(
                "the release {:?} just added is missing; is another process changing the ledger?",
                release.name
            ),
        })
    }

    /// Keys of the runs already recorded for a release.
    pub fn run_keys(&self, release_id: i64) -> Result<BTreeSet<String>> {
        let mut stmt = self.conn.prepare("SELECT key FROM runs WHERE release_id = ?1")?;
        let keys = stmt.query_map([release_id], |r| r.get(0))?.collect::<Result<BTreeSet<String>, _>>()?;
        Ok(keys)
    }

    /// Records one run with its events and metrics, in one transaction.
    pub fn record_run(&mut self, release_id: i64, run: &RunRecord) -> Result<()> {
        let (finite, notes) = run.finite();
        for note in &notes {
            tracing::warn!("{}: {note}", run.key);
        }
        let run = &finite;
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO runs (release_id, key, kind, family, seed, drive, must_pass, outcome, category, km, hours, kept_drive, replay, seen_in_training)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                release_id,
                run.key,
                run.kind,
                run.family,
                run.seed.map(|s| s as i64),
                run.drive,
                run.must_pass,
                run.outcome.as_str(),
                run.category,
                run.km,
                run.hours,
                run.kept_drive,
                run.replay,
                run.seen_in_training
            ],
        )
        .with_context(|| format!("recording run {} (already recorded?)", run.key))?;
        let run_id = tx.last_insert_rowid();
        for e in &run.events {
            tx.execute(
                "INSERT INTO events (run_id, time_s, category, detail, value) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![run_id, e.time_s, e.category, e.detail, e.value],
            )?;
        }
        for (name, value) in &run.metrics {
            tx.execute(
                "INSERT OR REPLACE INTO metrics (run_id, name, value) VALUES (?1, ?2, ?3)",
                params![run_id, name, value],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Every run of a release, with events and metrics, in key order.
    pub fn runs(&self, release_id: i64) -> Result<Vec<RunRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, key, kind, family, seed, drive, must_pass, outcome, category, km, hours, kept_drive, replay, seen_in_training
             FROM runs WHERE release_id = ?1 ORDER BY key",
        )?;
        let rows = stmt
            .query_map([release_id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    RunRecord {
                        key: r.get(1)?,
                        kind: r.get(2)?,
                        family: r.get(3)?,
                        seed: r.get::<_, Option<i64>>(4)?.map(|s| s as u64),
                        drive: r.get(5)?,
                        must_pass: r.get(6)?,
                        outcome: Outcome::Skipped,
                        category: r.get(8)?,
                        km: r.get(9)?,
                        hours: r.get(10)?,
                        kept_drive: r.get(11)?,
                        replay: r.get(12)?,
                        events: Vec::new(),
                        metrics: Vec::new(),
                        seen_in_training: r.get(13)?,
                    },
                    r.get::<_, String>(7)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut events = self.conn.prepare(
            "SELECT time_s, category, detail, value FROM events WHERE run_id = ?1 ORDER BY time_s, rowid",
        )?;
        let mut metrics =
            self.conn.prepare("SELECT name, value FROM metrics WHERE run_id = ?1 ORDER BY name")?;
        let mut runs = Vec::with_capacity(rows.len());
        for (id, mut run, outcome) in rows {
            run.outcome = Outcome::parse(&outcome).map_err(|_| HarnessError::Ledger {
                path: self.path.clone(),
                detail: format!(
                    "table runs, row {id} ({}): unknown outcome {outcome:?} (pass, fail or skipped)",
                    run.key
                ),
            })?;
            run.events = events
                .query_map([id], |r| {
                    Ok(RunEvent {
                        time_s: r.get(0)?,
                        category: r.get(1)?,
                        detail: r.get(2)?,
                        value: r.get(3)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            run.metrics =
                metrics.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
            runs.push(run);
        }
        Ok(runs)
    }

    /// Copies every release and run of `other` into this ledger (the shards
    /// of one eval, run as separate jobs). A release already here must be
    /// the same model on the same suite; runs already here are kept and
    /// counted, never overwritten. Returns (runs added, runs already here).
    pub fn merge(&mut self, other: &Ledger) -> Result<(usize, usize)> {
        let (mut added, mut present) = (0, 0);
        for release in other.releases()? {
            let here = self
                .add_release(&release)
                .with_context(|| format!("merging {} into {}", other.path.display(), self.path.display()))?;
            let keys = self.run_keys(here.id)?;
            for run in other.runs(release.id)? {
                if keys.contains(&run.key) {
                    present += 1;
                } else {
                    self.record_run(here.id, &run)?;
                    added += 1;
                }
            }
        }
        Ok((added, present))
    }
}

const RELEASE_COLUMNS: &str =
    "id, name, created_at, suite, suite_digest, policy, model_path, model_digest, contract, tool_version";

fn release_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Release> {
    Ok(Release {
        id: r.get(0)?,
        name: r.get(1)?,
        created_at: r.get(2)?,
        suite: r.get(3)?,
        suite_digest: r.get(4)?,
        policy: r.get(5)?,
        model_path: r.get(6)?,
        model_digest: r.get(7)?,
        contract: r.get(8)?,
        tool_version: r.get(9)?,
    })
}

#[cfg(test)]
mod tests;
