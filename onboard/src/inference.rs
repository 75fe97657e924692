//! The network through ONNX Runtime: the session with the configured
//! execution providers, the model card read from the file's metadata, and
//! input and output tensors allocated once, so a run allocates nothing on
//! the Rust side (ONNX Runtime's own arena does its work in C++).

use std::path::Path;
use std::time::Instant;

use nines_datasets::contract::{ModelCard, ONNX_METADATA_KEY, OUTPUTS, TensorSpec};
use ort::ep::ExecutionProviderDispatch;
use ort::session::{HasSelectedOutputs, OutputSelector, RunOptions, Session, SessionOutputs};
use ort::value::Tensor;
use sha2::{Digest, Sha256};

use crate::config::{ModelConfig, Provider};
use crate::{OnboardError, Result, ort_env};

/// A loaded model, ready to run.
pub struct Inference {
    session: Session,
    options: RunOptions<HasSelectedOutputs>,
    image: Tensor<f32>,
    speed: Tensor<f32>,
    card: ModelCard,
    provider: &'static str,
    digest: String,
    plan_len: usize,
}

impl std::fmt::Debug for Inference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inference")
            .field("digest", &self.digest)
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

/// What one run produced, copied out of ONNX Runtime's buffers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawOutputs<'a> {
    /// Plan, T x (x, y, v).
    pub plan: &'a [f32],
    /// Lead: probability, distance m, relative speed m/s.
    pub lead: &'a [f32],
    /// Depth at label resolution, m.
    pub depth: &'a [f32],
}

impl Inference {
    /// Loads `path` and registers the providers of `config`, in order.
    pub fn load(path: &Path, config: &ModelConfig, base_dir: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| OnboardError::Model {
            path: path.to_path_buf(),
            detail: format!("cannot read the model: {e}; give an ONNX file written by `nines export`"),
        })?;
        Self::from_bytes(&bytes, path, config, base_dir)
    }

    /// The same from a model in memory (`path` names it in errors): the
    /// exporter's parity check runs the file it is about to write through
    /// exactly the session code the robot runs.
    pub fn from_bytes(bytes: &[u8], path: &Path, config: &ModelConfig, base_dir: &Path) -> Result<Self> {
        let env = ort_env::environment()?;
        let mut builder =
            Session::builder(env).map_err(model_error(path, "creating an ONNX Runtime session"))?;
        if config.threads > 0 {
            builder = builder
                .with_intra_threads(config.threads)
                .map_err(model_error(path, "setting the thread count"))?;
        }
        let mut provider = "cpu";
        for p in &config.providers {
            let dispatch = dispatch(p, base_dir);
            match dispatch.register(&mut builder) {
                Ok(()) => {
                    provider = p.name();
                    break;
                }
                Err(e) if config.allow_fallback => {
                    tracing::warn!(
                        "execution provider `{}` is not available ({e}); trying the next one",
                        p.name()
                    );
                }
                Err(e) => {
                    return Err(OnboardError::Model {
                        path: path.to_path_buf(),
                        detail: format!(
                            "execution provider `{}` failed to register: {e}. Use an ONNX Runtime built with it \
                             (ORT_DYLIB_PATH), remove it from [[model.providers]], or set model.allow_fallback = true",
                            p.name()
                        ),
                    });
                }
            }
        }
        let session =
            builder.commit_from_memory(bytes).map_err(model_error(path, "ONNX Runtime refused the model"))?;
        let card = read_card(&session, path)?;
        let (inputs, outputs) = ModelCard::tensors(&card.contract);
        for (spec, got) in inputs.iter().zip(session.inputs()).chain(outputs.iter().zip(session.outputs())) {
            if spec.name != got.name() {
                return Err(OnboardError::Model {
                    path: path.to_path_buf(),
                    detail: format!(
                        "tensor `{}` where the contract has `{}`; re-export the model with `nines export`",
                        got.name(),
                        spec.name
                    ),
                });
            }
        }
        check_shapes(&session, path, &inputs, &outputs)?;
        let shape = |i: usize| inputs[i].shape.clone();
        let image = zeros(shape(0), path)?;
        let speed = zeros(shape(1), path)?;
        let mut selector = OutputSelector::no_default();
        for spec in &outputs {
            selector = selector.with(&spec.name).preallocate(&spec.name, zeros(spec.shape.clone(), path)?);
        }
        let options = RunOptions::new().map_err(model_error(path, "run options"))?.with_outputs(selector);
        let digest = format!("sha256:{:x}", Sha256::digest(bytes));
        let plan_len = card.contract.plan_times_secs.len();
        tracing::info!("model {} on execution provider `{provider}`", path.display());
        Ok(Self { session, options, image, speed, card, provider, digest, plan_len })
    }

    /// The model card from the file.
    #[must_use]
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// The execution provider in use.
    #[must_use]
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// SHA-256 of the ONNX file.
    #[must_use]
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The image input, [3F, H, W] flat, to fill before [`Self::run`].
    pub fn image_mut(&mut self) -> &mut [f32] {
        self.image.extract_tensor_mut().1
    }

    /// Runs the network on the image input and `speed`; `read` sees the outputs.
    pub fn run<R>(&mut self, speed: f32, read: impl FnOnce(RawOutputs<'_>) -> R) -> Result<R> {
        self.speed.extract_tensor_mut().1[0] = speed;
        let outputs: SessionOutputs<'_> = self
            .session
            .run_with_options(ort::inputs![&self.image, &self.speed], &self.options)
            .map_err(|source| OnboardError::Ort { context: "ONNX Runtime run failed".into(), source })?;
        let get = |i: usize| -> Result<&[f32]> {
            outputs[OUTPUTS[i]]
                .try_extract_tensor::<f32>()
                .map(|(_, data)| data)
                .map_err(|source| OnboardError::Ort { context: format!("output `{}`", OUTPUTS[i]), source })
        };
        let raw = RawOutputs { depth: get(0)?, plan: get(1)?, lead: get(2)? };
        debug_assert_eq!(raw.plan.len(), self.plan_len * 3);
        Ok(read(raw))
    }

    /// Seconds one bare `session.run` takes on the current inputs (benchmarks).
    pub fn time_bare_run(&mut self) -> Result<f64> {
        let start = Instant::now();
        self.run(0.0, |_| ())?;
        Ok(start.elapsed().as_secs_f64())
    }
}

/// Maps any ONNX Runtime error to a model error naming the file and the step.
fn model_error<E: std::fmt::Display>(
    path: &Path,
    what: &'static str,
) -> impl FnOnce(E) -> OnboardError + use<E> {
    let path = path.to_path_buf();
    move |e| OnboardError::Model { path, detail: format!("{what}: {e}") }
}

fn zeros(shape: Vec<usize>, path: &Path) -> Result<Tensor<f32>> {
    let n = shape.iter().product();
    Tensor::from_array((shape, vec![0.0f32; n])).map_err(|e| OnboardError::Model {
        path: path.to_path_buf(),
        detail: format!("allocating a tensor: {e}"),
    })
}

/// The model card stored in the file's metadata.
fn read_card(session: &Session, path: &Path) -> Result<ModelCard> {
    let missing = || OnboardError::Model {
        path: path.to_path_buf(),
        detail: format!(
            "no `{ONNX_METADATA_KEY}` metadata: this is not a nines model; export it with `nines export` so it carries its contract"
        ),
    };
    let metadata = session.metadata().map_err(|_| missing())?;
    let text = metadata.custom(ONNX_METADATA_KEY).ok_or_else(missing)?;
    let card: ModelCard = serde_json::from_str(&text).map_err(|e| OnboardError::Model {
        path: path.to_path_buf(),
        detail: format!(
            "`{ONNX_METADATA_KEY}` metadata is not a model card ({e}); re-export the model with this nines"
        ),
    })?;
    card.contract.validate(path).map_err(|e| OnboardError::Model {
        path: path.to_path_buf(),
        detail: format!("its contract (`{ONNX_METADATA_KEY}` metadata) is refused: {e}; re-export the model"),
    })?;
    Ok(card)
}

/// The contract's tensor shapes against the graph's own: a card that
/// says 2 frames on a graph that takes 3 is refused, never scored.
fn check_shapes(session: &Session, path: &Path, inputs: &[TensorSpec], outputs: &[TensorSpec]) -> Result<()> {
    let graph = session.inputs().iter().zip(inputs).chain(session.outputs().iter().zip(outputs));
    for (got, spec) in graph {
        let Some(shape) = got.dtype().tensor_shape() else { continue };
        let fits = shape.len() == spec.shape.len()
            && shape.iter().zip(&spec.shape).all(|(g, s)| *g < 0 || usize::try_from(*g).ok() == Some(*s));
        if !fits {
            return Err(OnboardError::Model {
                path: path.to_path_buf(),
                detail: format!(
                    "tensor `{}` is {:?} in the graph but {:?} by its contract (`{ONNX_METADATA_KEY}` \
                     metadata): the metadata was edited or belongs to another model; re-export it with `nines export`",
                    spec.name, &**shape, spec.shape
                ),
            });
        }
    }
    Ok(())
}

fn dispatch(provider: &Provider, base_dir: &Path) -> ExecutionProviderDispatch {
    match provider {
        Provider::Tensorrt { device, fp16, engine_cache } => {
            let mut ep = ort::ep::TensorRT::default().with_device_id(*device).with_fp16(*fp16);
            if let Some(dir) = engine_cache {
                let dir = if dir.is_absolute() { dir.clone() } else { base_dir.join(dir) };
                ep = ep.with_engine_cache(true).with_engine_cache_path(dir.display());
            }
            ep.build().error_on_failure()
        }
        Provider::Cuda { device } => {
            ort::ep::CUDA::default().with_device_id(*device).build().error_on_failure()
        }
        Provider::Cpu => ort::ep::CPU::default().build().error_on_failure(),
    }
}
