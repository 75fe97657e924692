//! Export: `nines export runs/NAME --out model.onnx`.
//!
//! burn-onnx traces the network's forward pass into ONNX (opset 18); the
//! graph's tensors are then renamed to the contract's names (`image`,
//! `speed` in; `depth`, `plan`, `lead` out) and the [`ModelCard`] goes into
//! `metadata_props["nines.contract"]`. Before anything is written, ONNX
//! Runtime runs the file on validation samples and every output is compared
//! with burn's forward pass: the largest difference must stay within
//! [`PARITY_TOLERANCE`] of `max(|burn|, 1)`. That is a relative 1e-4 for
//! values above 1 (depth and distances in metres, speeds) and an absolute
//! 1e-4 below it (presence probabilities, plan points near the origin),
//! where a relative bound would demand agreement far below what either
//! library's float summation order guarantees and 1e-4 m is a tenth of a
//! millimetre. A model that fails is not written.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::prelude::*;
use burn_onnx::export::OnnxExporter;
use nines_datasets::contract::{INPUTS, ModelCard, ModelContract, ONNX_METADATA_KEY, OUTPUTS};
use onnx_ir::ModelProto;
use protobuf::Message;

use crate::data::LabelSet;
use crate::model::{Model, ModelConfig, to_vec};
use crate::training::{load_run, write_atomic};
use crate::{OffboardError, Result};
use nines_onboard::config::ModelConfig as RuntimeModelConfig;
use nines_onboard::inference::Inference;

/// Largest accepted difference between ONNX Runtime and burn, relative to
/// `max(|burn value|, 1)` (see the module docs).
pub const PARITY_TOLERANCE: f32 = 1e-4;

/// Export settings.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Validation samples the parity check runs.
    pub samples: usize,
    /// The label folder (default: the one the run trained on).
    pub labels: Option<PathBuf>,
    /// Parity bound (default [`PARITY_TOLERANCE`]).
    pub tolerance: f32,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self { samples: 16, labels: None, tolerance: PARITY_TOLERANCE }
    }
}

/// The worst difference seen on one output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutputParity {
    /// Output name.
    pub name: &'static str,
    /// Largest |ort - burn| / max(|burn|, 1).
    pub worst: f32,
    /// Largest |ort - burn|.
    pub max_abs: f32,
    /// Where: sample and element.
    pub at: (usize, usize),
    /// The two values there (ort, burn).
    pub values: (f32, f32),
}

/// What an export did.
#[derive(Debug, Clone)]
pub struct ExportReport {
    /// The file written.
    pub path: PathBuf,
    /// Bytes written.
    pub bytes: usize,
    /// Parity per output.
    pub parity: Vec<OutputParity>,
    /// Samples compared.
    pub samples: usize,
    /// The model card written into the file.
    pub card: ModelCard,
}

/// Exports the run in `run` to `out`, after the parity check.
pub fn export(run: &Path, out: &Path, options: &ExportOptions) -> Result<ExportReport> {
    let trained = load_run(run)?;
    let labels = options.labels.clone().map_or_else(|| trained.run.source.labels.clone(), |l| vec![l]);
    let set = Arc::new(LabelSet::open_all(&labels, Some(&trained.run.contract))?);
    let validation = set.drive_indices(&trained.run.split.validation)?;
    let all = set.samples(&validation);
    let step = (all.len() / options.samples.max(1)).max(1);
    let picked: Vec<_> = all.iter().step_by(step).take(options.samples.max(1)).copied().collect();
    let batch = set.batch(&picked, None);
    let [_, h, w] = set.layout.image;
    let channels = 3 * set.frames_per_sample;
    let per_image = channels * h * w;

    let model = trained.model.valid();
    let samples: Vec<(&[f32], f32)> =
        (0..batch.size).map(|i| (&batch.image[i * per_image..(i + 1) * per_image], batch.speed[i])).collect();
    let info = CardInfo {
        contract: &trained.run.contract,
        training_data_digest: trained.run.source.training_data_digest.clone(),
        training_scenarios: trained.run.source.training_scenarios.clone(),
        model: serde_json::json!({
            "preset": trained.run.config.preset,
            "parameters": model.num_params(),
            "gflops": trained.run.model.flops() / 1e9,
            "epoch": trained.record.as_ref().map(|r| r.epoch),
        }),
        metrics: serde_json::to_value(trained.record.as_ref().map(|r| r.validation)).unwrap_or_default(),
    };
    write_checked(&model, &info, &samples, [channels, h, w], out, options.tolerance)
}

/// Exports a freshly initialised network (`preset`, weights from `seed`):
/// a model that runs but has learnt nothing. Its plan head starts as constant
/// velocity, so it is a fair stand-in for exercising the onboard runtime, its
/// fault handling and its benchmarks before any training. Parity-checked on
/// `samples` deterministic pseudo-random inputs like every export.
pub fn export_untrained(
    preset: &str,
    contract: &ModelContract,
    seed: u64,
    out: &Path,
) -> Result<ExportReport> {
    let config = ModelConfig::preset(preset, contract)?;
    let device = Device::flex();
    device.seed(seed);
    let model = config.init(&device);
    let (h, w) = (contract.input.height as usize, contract.input.width as usize);
    let channels = 3 * contract.input.frames.max(1) as usize;
    let mut state = seed | 1;
    let images: Vec<Vec<f32>> = (0..4)
        .map(|_| {
            (0..channels * h * w)
                .map(|_| {
                    // xorshift: inputs in the normalised range the network sees.
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state % 4096) as f32 / 1024.0 - 2.0
                })
                .collect()
        })
        .collect();
    let samples: Vec<(&[f32], f32)> =
        images.iter().enumerate().map(|(i, im)| (im.as_slice(), 2.0 * i as f32)).collect();
    let info = CardInfo {
        contract,
        training_data_digest: String::new(),
        training_scenarios: Vec::new(),
        model: serde_json::json!({
            "preset": preset,
            "parameters": model.num_params(),
            "gflops": config.flops() / 1e9,
            "epoch": null,
            "untrained": true,
        }),
        metrics: serde_json::Value::Null,
    };
    write_checked(&model, &info, &samples, [channels, h, w], out, PARITY_TOLERANCE)
}

/// What the card says besides the tensors.
struct CardInfo<'a> {
    contract: &'a ModelContract,
    training_data_digest: String,
    training_scenarios: Vec<nines_datasets::drive::DriveScenario>,
    model: serde_json::Value,
    metrics: serde_json::Value,
}

/// Traces `model`, writes the card into the graph, runs ONNX Runtime on
/// `samples` (image [3F, H, W], speed) against burn, and writes `out` only
/// when every output agrees within `tolerance`.
fn write_checked(
    model: &Model,
    info: &CardInfo<'_>,
    samples: &[(&[f32], f32)],
    [channels, h, w]: [usize; 3],
    out: &Path,
    tolerance: f32,
) -> Result<ExportReport> {
    let device = Device::flex();
    let sample_input = |i: usize| {
        let image =
            Tensor::<4>::from_data(TensorData::new(samples[i].0.to_vec(), [1, channels, h, w]), &device);
        let speed = Tensor::<2>::from_data(TensorData::new(vec![samples[i].1], [1, 1]), &device);
        (image, speed)
    };
    // burn's forward pass first: tracing moves the batch norms' running
    // statistics onto the capture device, after which the model cannot run.
    let mut reference = Vec::with_capacity(samples.len());
    for i in 0..samples.len() {
        let (image, speed) = sample_input(i);
        let (depth, plan, lead) = model.forward(image, speed);
        reference.push([to_vec(depth)?, to_vec(plan)?, to_vec(lead)?]);
    }
    let traced = OnnxExporter::new()
        .export(model, sample_input(0), |m: &Model, (image, speed)| m.forward(image, speed))
        .map_err(|e| OffboardError::Model(format!("tracing the network into ONNX: {e}")))?;

    let (inputs, outputs) = ModelCard::tensors(info.contract);
    let card = ModelCard {
        contract_digest: info.contract.digest(),
        contract: info.contract.clone(),
        inputs,
        outputs,
        training_data_digest: info.training_data_digest.clone(),
        model: info.model.clone(),
        metrics: info.metrics.clone(),
        training_scenarios: info.training_scenarios.clone(),
    };
    let bytes = finish_graph(traced.as_bytes(), &card)?;

    let mut inference = Inference::from_bytes(&bytes, out, &RuntimeModelConfig::default(), Path::new(""))
        .map_err(|source| OffboardError::Runtime {
            context: "loading the exported model into the runtime for the parity check".into(),
            source: Box::new(source),
        })?;
    let mut parity: Vec<OutputParity> = Vec::new();
    for (i, reference) in reference.iter().enumerate() {
        let ran = run_inference(&mut inference, samples[i].0, samples[i].1)?;
        for (k, (ort, burn)) in ran.iter().zip(reference).enumerate() {
            let p = compare(OUTPUTS[k], ort, burn, i);
            match parity.get_mut(k) {
                Some(worst) if p.worst > worst.worst => *worst = p,
                Some(_) => {}
                None => parity.push(p),
            }
        }
    }
    if let Some(bad) = parity.iter().find(|p| p.worst.is_nan() || p.worst > tolerance) {
        return Err(OffboardError::Model(format!(
            "export parity failed: output `{}` differs between ONNX Runtime and burn by {:.3e} (relative to max(|value|, 1); limit {:.0e}) at sample {} element {}: ort {} vs burn {}; {} was not written",
            bad.name,
            bad.worst,
            tolerance,
            bad.at.0,
            bad.at.1,
            bad.values.0,
            bad.values.1,
            out.display()
        )));
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(OffboardError::io(parent, "creating the folder"))?;
    }
    write_atomic(out, &bytes)?;
    Ok(ExportReport { path: out.to_path_buf(), bytes: bytes.len(), parity, samples: samples.len(), card })
}

/// Runs a loaded model on one sample (`image` [3F, H, W], `speed` m/s)
/// through the runtime's own session code; returns depth, plan and lead, flat.
pub fn run_inference(inference: &mut Inference, image: &[f32], speed: f32) -> Result<[Vec<f32>; 3]> {
    let input = inference.image_mut();
    if input.len() != image.len() {
        return Err(OffboardError::Model(format!(
            "a sample of {} values for an image input of {}",
            image.len(),
            input.len()
        )));
    }
    input.copy_from_slice(image);
    inference.run(speed, |raw| [raw.depth.to_vec(), raw.plan.to_vec(), raw.lead.to_vec()]).map_err(|source| {
        OffboardError::Runtime { context: "running the exported model".into(), source: Box::new(source) }
    })
}

/// The worst difference between `ort` and `burn` on one output.
#[must_use]
pub fn compare(name: &'static str, ort: &[f32], burn: &[f32], sample: usize) -> OutputParity {
    let mut worst = OutputParity { name, worst: 0.0, max_abs: 0.0, at: (sample, 0), values: (0.0, 0.0) };
    if ort.len() != burn.len() {
        worst.worst = f32::INFINITY;
        return worst;
    }
    for (j, (&a, &b)) in ort.iter().zip(burn).enumerate() {
        let diff = (a - b).abs();
        let relative = if diff.is_nan() { f32::INFINITY } else { diff / b.abs().max(1.0) };
        worst.max_abs = worst.max_abs.max(diff);
        if relative > worst.worst {
            worst = OutputParity {
                name,
                worst: relative,
                max_abs: worst.max_abs,
                at: (sample, j),
                values: (a, b),
            };
        }
    }
    worst
}

/// Renames the traced graph's inputs and outputs to the contract's names
/// and adds the model card and producer.
fn finish_graph(bytes: &[u8], card: &ModelCard) -> Result<Vec<u8>> {
    let bad = |what: String| OffboardError::Model(format!("post-processing the traced ONNX graph: {what}"));
    let mut model = ModelProto::parse_from_bytes(bytes).map_err(|e| bad(e.to_string()))?;
    let graph = model.graph.as_mut().ok_or_else(|| bad("no graph".into()))?;
    if graph.input.len() != 2 || graph.output.len() != 3 {
        return Err(bad(format!(
            "{} inputs and {} outputs, expected 2 and 3",
            graph.input.len(),
            graph.output.len()
        )));
    }
    let mut renames = Vec::new();
    for (value, name) in graph.input.iter_mut().zip(INPUTS) {
        renames.push((std::mem::replace(&mut value.name, name.to_owned()), name.to_owned()));
    }
    for (value, name) in graph.output.iter_mut().zip(OUTPUTS) {
        renames.push((std::mem::replace(&mut value.name, name.to_owned()), name.to_owned()));
    }
    for node in &mut graph.node {
        for name in node.input.iter_mut().chain(node.output.iter_mut()) {
            if let Some((_, new)) = renames.iter().find(|(old, _)| old == name) {
                name.clone_from(new);
            }
        }
    }
    graph.name = "nines".into();
    model.producer_name = "nines".into();
    model.producer_version = env!("CARGO_PKG_VERSION").into();
    model.doc_string =
        "nines camera-only driving network: depth, plan and lead from stacked camera frames".into();
    let json = serde_json::to_string(card).map_err(|e| bad(e.to_string()))?;
    model.metadata_props.retain(|p| p.key != ONNX_METADATA_KEY);
    // The entry type is not re-exported by onnx-ir; the vector names it.
    #[expect(clippy::default_trait_access, reason = "StringStringEntryProto is not nameable from here")]
    model.metadata_props.push(Default::default());
    if let Some(entry) = model.metadata_props.last_mut() {
        entry.key = ONNX_METADATA_KEY.into();
        entry.value = json;
    }
    model.write_to_bytes().map_err(|e| bad(e.to_string()))
}

/// Reads the model card of an exported file.
pub fn read_card(path: &Path) -> Result<ModelCard> {
    let bytes = std::fs::read(path).map_err(OffboardError::io(path, "reading the model"))?;
    let model = ModelProto::parse_from_bytes(&bytes)
        .map_err(|e| OffboardError::run(path, format!("not an ONNX model: {e}")))?;
    let entry = model.metadata_props.iter().find(|p| p.key == ONNX_METADATA_KEY).ok_or_else(|| {
        OffboardError::run(
            path,
            format!("has no metadata_props[\"{ONNX_METADATA_KEY}\"]; export it with `nines export`"),
        )
    })?;
    let card: ModelCard = serde_json::from_str(&entry.value)
        .map_err(|e| OffboardError::run(path, format!("{ONNX_METADATA_KEY}: {e}")))?;
    card.contract.validate(path)?;
    Ok(card)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A copy of `model` whose card's contract `edit` changed, as a
    /// hand-edited or corrupted file would carry it.
    fn edited(model: &Path, out: &Path, edit: impl Fn(&mut serde_json::Value)) -> Vec<u8> {
        let mut proto = ModelProto::parse_from_bytes(&std::fs::read(model).unwrap()).unwrap();
        let entry = proto.metadata_props.iter_mut().find(|p| p.key == ONNX_METADATA_KEY).unwrap();
        let mut card: serde_json::Value = serde_json::from_str(&entry.value).unwrap();
        edit(&mut card["contract"]);
        entry.value = card.to_string();
        let bytes = proto.write_to_bytes().unwrap();
        std::fs::write(out, &bytes).unwrap();
        bytes
    }

    #[test]
    fn an_edited_contract_is_refused_wherever_the_model_is_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.onnx");
        export_untrained("tiny", &ModelContract::default(), 1, &good).unwrap();
        let load = |bytes: &[u8], path: &Path| {
            Inference::from_bytes(bytes, path, &RuntimeModelConfig::default(), Path::new("")).map(|_| ())
        };
        // Values no runtime can use: refused by the one validation, naming the field.
        for (field, value, name) in [
            ("input.frames", serde_json::json!(0), "frames"),
            ("label_stride", serde_json::json!(0), "label_stride"),
            ("label_stride", serde_json::json!(3), "label_stride"),
            ("input.std", serde_json::json!([0.2, 0.0, 0.2]), "std"),
        ] {
            let path = dir.path().join(format!("{name}.onnx"));
            let bytes = edited(&good, &path, |c| match field.split_once('.') {
                Some((a, b)) => c[a][b] = value.clone(),
                None => c[field] = value.clone(),
            });
            let err = read_card(&path).unwrap_err().to_string();
            assert!(err.contains(field) && err.contains(&*path.to_string_lossy()), "{field}: {err}");
            let err = load(&bytes, &path).unwrap_err().to_string();
            assert!(err.contains(field), "{field}: {err}");
        }
        // A valid contract that is not the graph's: 3 frames on a graph that takes 2.
        let path = dir.path().join("frames3.onnx");
        let bytes = edited(&good, &path, |c| c["input"]["frames"] = serde_json::json!(3));
        assert!(read_card(&path).is_ok(), "the card alone is a valid contract");
        let err = load(&bytes, &path).unwrap_err().to_string();
        assert!(err.contains("tensor `image`") && err.contains("re-export"), "{err}");
        assert!(load(&std::fs::read(&good).unwrap(), &good).is_ok());
    }

    #[test]
    fn compare_finds_the_worst_element_relative_to_max_of_value_and_one() {
        let p = compare("depth", &[10.0005, 0.5001, 3.0], &[10.0, 0.5, 3.0], 2);
        // 0.0005 / 10 = 5e-5 < 0.0001 / 1 = 1e-4.
        assert_eq!(p.at, (2, 1));
        assert!((p.worst - 1e-4).abs() < 2e-6, "{p:?}");
        assert!((p.max_abs - 5e-4).abs() < 1e-5);
        assert!(compare("plan", &[f32::NAN], &[1.0], 0).worst.is_infinite());
        assert!(compare("lead", &[1.0], &[1.0, 2.0], 0).worst.is_infinite());
    }
}
