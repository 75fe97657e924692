//! Training data: label shards memory-mapped, samples with their stacked
//! history frames, a train/validation split by drive (never by frame: two
//! frames 0.1 s apart are nearly the same picture), shuffled batches
//! assembled on worker threads, photometric augmentation.
//!
//! Augmentation changes the pixels (gamma, contrast, brightness, colour
//! balance, noise) and, for a share of samples, the viewpoint: the car
//! moved sideways and turned, with the plan it should then drive
//! ([`crate::viewpoint`]); both the same way for every stacked frame of a
//! sample. No flips: a flipped image would need a flipped plan, lead and
//! camera mount, and the contract's camera is not symmetric in general.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use nines_datasets::contract::{InputSpec, ModelContract};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::distill::LabelMode;
use crate::labels::{DriveShard, INDEX_FILE, LabelIndex, ShardEntry, ShardLayout};
use crate::viewpoint::{self, GroundView, Shift, ViewpointAugment};
use crate::{OffboardError, Result};

/// One frame of one drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SampleRef {
    /// Index into [`LabelSet::drives`].
    pub drive: u32,
    /// Frame within the drive's shard (the newest of the stack).
    pub frame: u32,
}

/// The label folders, opened for training as one set.
#[derive(Debug)]
pub struct LabelSet {
    /// The folders, as given (errors name the first).
    pub dirs: Vec<PathBuf>,
    /// Their index: the first folder's contract, every folder's shards.
    pub index: LabelIndex,
    /// Shards, sorted by file name.
    pub drives: Vec<DriveShard>,
    /// Per drive and frame, the frames stacked with it (newest first), if
    /// its whole history is in the drive.
    stacks: Vec<Vec<Option<Vec<u32>>>>,
    /// Each frame's tensor shapes (the contract's).
    pub layout: ShardLayout,
    /// Frames stacked per sample.
    pub frames_per_sample: usize,
    /// The label camera against the ground (virtual-camera labels only),
    /// for viewpoint augmentation.
    ground: Option<GroundView>,
    /// Per drive, the camera's height above the ground from its depth
    /// labels (None: too little labelled road; its frames are not moved).
    camera_height_m: Vec<Option<f64>>,
}

impl LabelSet {
    /// Opens `dir` (made by `nines distill`), refusing labels made under
    /// another contract than `expected` when one is given.
    pub fn open(dir: &Path, expected: Option<&ModelContract>) -> Result<Self> {
        Self::open_all(&[dir.to_path_buf()], expected)
    }

    /// Opens several label folders as one set (a data engine's rounds).
    /// They must share a contract; a drive distilled into two of them
    /// counts once.
    pub fn open_all(dirs: &[PathBuf], expected: Option<&ModelContract>) -> Result<Self> {
        let Some(first) = dirs.first() else {
            return Err(OffboardError::labels(PathBuf::from(INDEX_FILE), "no label folder given"));
        };
        let load = |dir: &Path| {
            LabelIndex::load(dir)?.ok_or_else(|| {
                OffboardError::labels(
                    dir.join(INDEX_FILE),
                    "no label index here; make labels with `nines distill DRIVES --out DIR` first",
                )
            })
        };
        let mut index = load(first)?;
        let mut folders: Vec<(usize, ShardEntry)> = index.shards.drain(..).map(|e| (0, e)).collect();
        for (i, dir) in dirs.iter().enumerate().skip(1) {
            let other = load(dir)?;
            if other.contract_digest != index.contract_digest {
                return Err(OffboardError::labels(
                    dir.join(INDEX_FILE),
                    format!(
                        "made under contract {}, but {} under {}; train on folders of one contract",
                        other.contract_digest,
                        first.display(),
                        index.contract_digest
                    ),
                ));
            }
            for entry in other.shards {
                if !folders.iter().any(|(_, e)| e.drive_digest == entry.drive_digest) {
                    folders.push((i, entry));
                }
            }
            index.failed.extend(other.failed);
        }
        folders.sort_by(|a, b| a.1.shard.cmp(&b.1.shard));
        let contract = index.contract.clone();
        let frames_per_sample = contract.input.frames.max(1) as usize;
        let layout = ShardLayout::of_contract(&contract);
        let mut drives = Vec::with_capacity(folders.len());
        for (folder, entry) in &folders {
            let path = dirs[*folder].join(&entry.shard);
            drives.push(DriveShard::open(&path, entry, &index.contract_digest, layout)?);
        }
        index.shards = folders.into_iter().map(|(_, e)| e).collect();
        let stacks = drives.iter().map(|d| stacks(&d.stamp, &contract.input)).collect();
        if drives.is_empty() {
            return Err(OffboardError::labels(
                first.join(INDEX_FILE),
                "the index lists no labelled drive; distil some drives into this folder first",
            ));
        }
        let ground = (index.mode == LabelMode::Virtual).then(|| GroundView::of_contract(&contract));
        let camera_height_m = match &ground {
            Some(view) => {
                let stride = contract.label_stride.max(1) as usize;
                drives.iter().map(|d| camera_height(view, d, stride)).collect()
            }
            None => vec![None; drives.len()],
        };
        let set = Self {
            dirs: dirs.to_vec(),
            layout,
            frames_per_sample,
            index,
            drives,
            stacks,
            ground,
            camera_height_m,
        };
        if let Some(expected) = expected {
            set.check_contract(expected)?;
        }
        Ok(set)
    }

    /// The camera's height above the ground in drive `d`, m, as its depth
    /// labels show it (None: too little labelled road, or native-camera labels).
    #[must_use]
    pub fn camera_height_m(&self, d: usize) -> Option<f64> {
        self.camera_height_m.get(d).copied().flatten()
    }

    /// Whether some drive's frames can be seen from a moved viewpoint
    /// (virtual-camera labels with enough labelled road).
    #[must_use]
    pub fn moves_viewpoints(&self) -> bool {
        self.ground.is_some() && self.camera_height_m.iter().any(Option::is_some)
    }

    /// The first folder's index file, which errors name.
    fn index_path(&self) -> PathBuf {
        self.dirs[0].join(INDEX_FILE)
    }

    /// Refuses labels made under another contract than `expected`, listing the differences.
    pub fn check_contract(&self, expected: &ModelContract) -> Result<()> {
        let differences = self.index.contract.differences(expected);
        if differences.is_empty() {
            return Ok(());
        }
        let mut detail = format!(
            "these labels were made under contract {}, but this run trains under {}:",
            self.index.contract_digest,
            expected.digest()
        );
        for d in &differences {
            detail.push_str("\n  ");
            detail.push_str(d);
        }
        detail.push_str(
            "\ndistil the drives again under the run's contract, or start a new run on these labels",
        );
        Err(OffboardError::labels(self.index_path(), detail))
    }

    /// The contract the labels were made under.
    #[must_use]
    pub fn contract(&self) -> &ModelContract {
        &self.index.contract
    }

    /// The tensors' layout and the frames stacked per sample: the shape of a batch.
    #[must_use]
    pub fn shape(&self) -> (&ShardLayout, usize) {
        (&self.layout, self.frames_per_sample)
    }

    /// Every usable sample of the given drives, in drive and frame order.
    #[must_use]
    pub fn samples(&self, drives: &[usize]) -> Vec<SampleRef> {
        drives
            .iter()
            .flat_map(|&d| {
                self.stacks[d]
                    .iter()
                    .enumerate()
                    .filter(|(_, stack)| stack.is_some())
                    .map(move |(frame, _)| SampleRef { drive: d as u32, frame: frame as u32 })
            })
            .collect()
    }

    /// `samples` with every sample of a recovering frame (the index's
    /// `recovering_frames`) drawn `weight` times: the whole part always,
    /// the fraction by a draw seeded with `seed`. A weight of 1 returns them as they are.
    #[must_use]
    pub fn weighted(&self, samples: &[SampleRef], weight: f64, seed: u64) -> Vec<SampleRef> {
        if weight <= 1.0 {
            return samples.to_vec();
        }
        let recovering: Vec<BTreeSet<u32>> =
            self.index.shards.iter().map(|e| e.recovering_frames.iter().copied().collect()).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (whole, fraction) = (weight.trunc() as usize, weight.fract());
        let mut out = Vec::with_capacity(samples.len());
        for sample in samples {
            let copies = if recovering[sample.drive as usize].contains(&sample.frame) {
                whole + usize::from(fraction > 0.0 && rng.random_bool(fraction))
            } else {
                1
            };
            out.extend(std::iter::repeat_n(*sample, copies));
        }
        out
    }

    /// Splits the drives into training and validation, by drive: a seeded
    /// shuffle of the drive digests, `fraction` of them (at least one) held out.
    pub fn split(&self, fraction: f64, seed: u64) -> Result<Split> {
        let n = self.drives.len();
        if n < 2 {
            return Err(OffboardError::labels(
                self.index_path(),
                format!(
                    "{n} labelled drive; training needs at least 2 (validation is held out by drive): distil more drives"
                ),
            ));
        }
        let held = ((n as f64 * fraction).round() as usize).clamp(1, n - 1);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| self.drives[a].drive_digest.cmp(&self.drives[b].drive_digest));
        shuffle(&mut order, seed);
        let validation: BTreeSet<usize> = order[..held].iter().copied().collect();
        let name = |d: usize| self.drives[d].name.clone();
        Ok(Split {
            train: (0..n).filter(|d| !validation.contains(d)).map(name).collect(),
            validation: validation.into_iter().map(name).collect(),
        })
    }

    /// Drive indices of shard names (as a [`Split`] lists them).
    pub fn drive_indices(&self, names: &[String]) -> Result<Vec<usize>> {
        names
            .iter()
            .map(|name| {
                self.drives.iter().position(|d| &d.name == name).ok_or_else(|| {
                    OffboardError::labels(
                        self.index_path(),
                        format!("the run was trained on {name}, which this label folder no longer has"),
                    )
                })
            })
            .collect()
    }

    /// Mean of every labelled depth pixel of the given drives (the
    /// mean-depth baseline), m.
    #[must_use]
    pub fn mean_depth(&self, drives: &[usize]) -> f32 {
        let (mut sum, mut count) = (0.0f64, 0u64);
        for &d in drives {
            let drive = &self.drives[d];
            for v in (0..drive.frames).flat_map(|f| drive.depth_of(f)) {
                if v > 0.0 {
                    sum += f64::from(v);
                    count += 1;
                }
            }
        }
        if count == 0 { 0.0 } else { (sum / count as f64) as f32 }
    }
}

/// Which drives train and which validate, by shard name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// Training drives.
    pub train: Vec<String>,
    /// Held-out drives.
    pub validation: Vec<String>,
}

/// Per frame, the frame indices stacked with it (newest first) when its
/// whole history is in the drive, by the contract's history rule
/// ([`InputSpec::history`]) over the frames up to it.
fn stacks(stamp: &[i64], input: &InputSpec) -> Vec<Option<Vec<u32>>> {
    let mut picked = vec![0usize; input.frames.max(1) as usize];
    (0..stamp.len())
        .map(|i| {
            let history = input.history(stamp[i], &stamp[..=i].iter().map(|&s| Some(s)), &mut picked);
            history.complete.then(|| picked.iter().map(|&j| j as u32).collect())
        })
        .collect()
}

/// The median of the camera heights that five frames spread over `drive`
/// show (see [`GroundView::height_from_depth`]).
fn camera_height(view: &GroundView, drive: &DriveShard, stride: usize) -> Option<f64> {
    let mut heights: Vec<f64> = (0..5)
        .map(|i| i * drive.frames / 5)
        .filter(|&f| f < drive.frames)
        .filter_map(|f| {
            view.height_from_depth(&drive.depth_of(f).collect::<Vec<_>>(), drive.layout.depth, stride)
        })
        .collect();
    heights.sort_by(f64::total_cmp);
    heights.get(heights.len() / 2).copied()
}

/// Fisher-Yates shuffle from a seed (the same seed, the same order).
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for i in (1..items.len()).rev() {
        items.swap(i, rng.random_range(0..=i));
    }
}

/// A batch, flat and row-major, ready to become tensors.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Samples.
    pub size: usize,
    /// Normalised images [B, 3F, H, W].
    pub image: Vec<f32>,
    /// Ego speed [B], m/s.
    pub speed: Vec<f32>,
    /// Depth labels [B, 1, h, w], m (0 = none).
    pub depth: Vec<f32>,
    /// Plan labels [B, T, 3].
    pub plan: Vec<f32>,
    /// Plan validity [B, T], 0 or 1.
    pub plan_valid: Vec<f32>,
    /// Lead labels [B, 3].
    pub lead: Vec<f32>,
    /// Lead validity [B, 2], 0 or 1.
    pub lead_valid: Vec<f32>,
}

/// Photometric augmentation draws for one sample.
#[derive(Debug, Clone, Copy)]
struct Photometric {
    gamma: f32,
    contrast: f32,
    gain: [f32; 3],
    noise: f32,
}

impl Photometric {
    fn draw(rng: &mut ChaCha8Rng) -> Self {
        let brightness = rng.random_range(0.75..1.25f32);
        Self {
            gamma: rng.random_range(0.8..1.25),
            contrast: rng.random_range(0.75..1.25),
            gain: std::array::from_fn(|_| brightness * rng.random_range(0.93..1.07f32)),
            noise: rng.random_range(0.0..0.03),
        }
    }
}

/// How a training pass augments its samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Augment {
    /// Seeds every draw.
    pub seed: u64,
    /// Photometric changes (gamma, contrast, colour, noise).
    pub photometric: bool,
    /// Moved viewpoints.
    pub viewpoint: ViewpointAugment,
}

impl LabelSet {
    /// The camera height of `sample`'s drive when the sample can be seen
    /// from a moved viewpoint: virtual-camera labels, enough labelled road,
    /// and a car at least [`viewpoint::MIN_SPEED_MPS`] fast.
    fn movable(&self, sample: SampleRef) -> Option<f64> {
        let d = sample.drive as usize;
        let speed = self.drives.get(d)?.speed.get(sample.frame as usize).copied().unwrap_or(0.0);
        (self.ground.is_some() && f64::from(speed) >= viewpoint::MIN_SPEED_MPS)
            .then(|| self.camera_height_m(d))
            .flatten()
    }

    /// The viewpoint move drawn for `sample` (None: not moved). A car
    /// slower than [`viewpoint::MIN_SPEED_MPS`] is never moved: it could
    /// not rejoin its path within the plan.
    fn draw_shift(
        &self,
        sample: SampleRef,
        viewpoint: &ViewpointAugment,
        rng: &mut ChaCha8Rng,
    ) -> Option<(Shift, f64)> {
        if !rng.random_bool(viewpoint.probability.clamp(0.0, 1.0)) {
            return None;
        }
        let height = self.movable(sample)?;
        let (shift, yaw) = (viewpoint.max_shift_m, viewpoint.max_yaw_deg.to_radians());
        let lateral_m = if shift > 0.0 { rng.random_range(-shift..=shift) } else { 0.0 };
        let yaw_rad = if yaw > 0.0 { rng.random_range(-yaw..=yaw) } else { 0.0 };
        Some((Shift { lateral_m, yaw_rad }, height))
    }

    /// Assembles one batch. `augment` seeds the photometric and viewpoint
    /// augmentation (None: the pixels and labels as recorded).
    #[must_use]
    pub fn batch(&self, samples: &[SampleRef], augment: Option<Augment>) -> Batch {
        self.assemble(samples, augment, None)
    }

    /// One batch with every sample seen from the car moved by `shift`
    /// (samples whose drive cannot be moved, or slower than
    /// [`viewpoint::MIN_SPEED_MPS`], stay as recorded), the plan labels
    /// asking for a recovery with time constant `recovery_time_s`.
    #[must_use]
    pub fn batch_seen_from(&self, samples: &[SampleRef], shift: Shift, recovery_time_s: f64) -> Batch {
        self.assemble(samples, None, Some((shift, recovery_time_s)))
    }

    fn assemble(
        &self,
        samples: &[SampleRef],
        augment: Option<Augment>,
        fixed: Option<(Shift, f64)>,
    ) -> Batch {
        let contract = self.contract();
        let [_, h, w] = self.layout.image;
        let f = self.frames_per_sample;
        let t = self.layout.plan_steps;
        let plane = h * w;
        let mut batch = Batch {
            size: samples.len(),
            image: vec![0.0; samples.len() * 3 * f * plane],
            ..Batch::default()
        };
        for (b, sample) in samples.iter().enumerate() {
            let drive = &self.drives[sample.drive as usize];
            let frame = sample.frame as usize;
            let stack =
                self.stacks[sample.drive as usize].get(frame).and_then(Option::as_deref).unwrap_or(&[]);
            let mut rng = augment
                .map(|a| ChaCha8Rng::seed_from_u64(a.seed ^ (b as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)));
            let photo =
                rng.as_mut().map(Photometric::draw).filter(|_| augment.is_some_and(|a| a.photometric));
            let moved = match (fixed, augment, rng.as_mut()) {
                (Some((shift, tau)), _, _) => self.movable(*sample).map(|h| (shift, h, tau)),
                (None, Some(a), Some(rng)) => self
                    .draw_shift(*sample, &a.viewpoint, rng)
                    .map(|(shift, h)| (shift, h, a.viewpoint.recovery_time_s)),
                _ => None,
            };
            let map = match (&self.ground, moved) {
                (Some(view), Some((shift, height, _))) => Some(view.source_pixels(shift, height)),
                _ => None,
            };
            let images = drive.image_bytes();
            for (k, &src) in stack.iter().enumerate() {
                let src = &images[src as usize * 3 * plane..(src as usize + 1) * 3 * plane];
                for c in 0..3 {
                    let out_start = ((b * f + k) * 3 + c) * plane;
                    let out = &mut batch.image[out_start..out_start + plane];
                    let pixels = &src[c * plane..(c + 1) * plane];
                    let value = |i: usize| match &map {
                        Some(map) => viewpoint::sample(pixels, w, h, map[i]),
                        None => f32::from(pixels[i]),
                    };
                    match (photo, rng.as_mut()) {
                        (Some(p), Some(rng)) => {
                            for (i, o) in out.iter_mut().enumerate() {
                                let x = (value(i) / 255.0).powf(p.gamma);
                                let x = ((x - 0.5) * p.contrast + 0.5) * p.gain[c]
                                    + p.noise * rng.random_range(-1.0..1.0f32);
                                *o = contract.input.normalise(c, x.clamp(0.0, 1.0));
                            }
                        }
                        _ => {
                            for (i, o) in out.iter_mut().enumerate() {
                                *o = contract.input.normalise(c, value(i) / 255.0);
                            }
                        }
                    }
                }
            }
            let mut plan = drive.plan[frame * t * 3..(frame + 1) * t * 3].to_vec();
            if let Some((shift, _, tau)) = moved {
                // A moved view's depth is not the recorded one: no depth label.
                batch.depth.extend(drive.depth_of(frame).map(|_| 0.0));
                shift.move_plan(&mut plan, &contract.plan_times_secs, tau);
            } else {
                batch.depth.extend(drive.depth_of(frame));
            }
            batch.speed.push(drive.speed[frame]);
            batch.plan.extend_from_slice(&plan);
            batch
                .plan_valid
                .extend(drive.plan_valid[frame * t..(frame + 1) * t].iter().map(|&v| f32::from(v)));
            batch.lead.extend_from_slice(&drive.lead[frame * 3..frame * 3 + 3]);
            batch.lead_valid.extend(drive.lead_valid[frame * 2..frame * 2 + 2].iter().map(|&v| f32::from(v)));
        }
        batch
    }
}

/// The batches of one pass over `samples`, assembled ahead on worker
/// threads and delivered in order (the order, and so training, does not
/// depend on thread timing).
pub struct Batches {
    receivers: Vec<Receiver<Batch>>,
    next: usize,
    count: usize,
    workers: Vec<std::thread::JoinHandle<()>>,
}

/// How a pass draws its batches.
#[derive(Debug, Clone, Copy)]
pub struct PassSpec {
    /// Samples per batch.
    pub batch_size: usize,
    /// Shuffle with this seed (None: in order).
    pub shuffle: Option<u64>,
    /// Augment, with seeds derived from this one (None: no augmentation).
    pub augment: Option<Augment>,
    /// Drop a last batch smaller than `batch_size` (batch norm needs more than one sample).
    pub drop_last: bool,
    /// Worker threads.
    pub workers: usize,
}

impl Batches {
    /// Starts a pass.
    #[must_use]
    pub fn start(set: &Arc<LabelSet>, samples: &[SampleRef], spec: PassSpec) -> Self {
        let mut order = samples.to_vec();
        if let Some(seed) = spec.shuffle {
            shuffle(&mut order, seed);
        }
        let size = spec.batch_size.max(1);
        let mut chunks: Vec<Vec<SampleRef>> = order.chunks(size).map(<[SampleRef]>::to_vec).collect();
        if spec.drop_last && chunks.last().is_some_and(|c| c.len() < size) {
            chunks.pop();
        }
        let count = chunks.len();
        let chunks = Arc::new(chunks);
        let workers = spec.workers.clamp(1, count.max(1));
        let mut receivers = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for worker in 0..workers {
            let (tx, rx): (SyncSender<Batch>, Receiver<Batch>) = sync_channel(2);
            let (set, chunks) = (Arc::clone(set), Arc::clone(&chunks));
            let augment = spec.augment;
            let handle =
                std::thread::Builder::new().name(format!("nines-loader-{worker}")).spawn(move || {
                    for (b, chunk) in chunks.iter().enumerate().skip(worker).step_by(workers) {
                        let augment = augment.map(|a| Augment {
                            seed: a.seed ^ (b as u64 + 1).wrapping_mul(0xd1b5_4a32_d192_ed03),
                            ..a
                        });
                        if tx.send(set.batch(chunk, augment)).is_err() {
                            return;
                        }
                    }
                });
            if let Ok(handle) = handle {
                handles.push(handle);
                receivers.push(rx);
            }
        }
        Self { receivers, next: 0, count, workers: handles }
    }

    /// Batches in this pass.
    #[must_use]
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the pass has no batch.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl Iterator for Batches {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.count || self.receivers.is_empty() {
            return None;
        }
        let batch = self.receivers[self.next % self.receivers.len()].recv().ok();
        self.next += 1;
        batch
    }
}

impl Drop for Batches {
    fn drop(&mut self) {
        // Disconnecting the channels stops the workers at their next send.
        self.receivers.clear();
        for handle in self.workers.drain(..) {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacks_find_the_frame_one_spacing_back() {
        let ms = 1_000_000i64;
        // 10 Hz with one frame missing (at 300 ms).
        let stamp = [0, 100 * ms, 200 * ms, 400 * ms, 500 * ms];
        let mut input = InputSpec { frames: 2, frame_spacing_secs: 0.1, ..InputSpec::default() };
        let two = stacks(&stamp, &input);
        // Frame 0 has no history; frame 3 (400 ms) lacks 300 ms.
        assert_eq!(two, vec![None, Some(vec![1, 0]), Some(vec![2, 1]), None, Some(vec![4, 3])]);
        input.frames = 1;
        assert!(stacks(&stamp, &input).iter().all(Option::is_some));
    }
}
