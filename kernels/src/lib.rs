//! nines-kernels: the data-parallel hot loops of nines, each with a CPU
//! reference (rayon) and a CUDA version (NVRTC at run time) behind one API,
//! [`Kernels`], that runs on the device it was made for.
//!
//! - [`project`]: points into a camera with a z-buffer (nearest wins).
//! - [`warp`]: an image into the model's virtual camera, resized and
//!   normalised to planar f32 (distillation and the onboard runtime both use it).
//! - [`mapped`]: read-only memory-mapped files (label shards for training).
//!
//! Depends on nines-datasets only; never on the simulator, training or the
//! runtime. Unsafe code lives in `cuda` and `mapped` alone, one `SAFETY`
//! comment per block.

#[cfg(feature = "cuda")]
pub mod cuda;
mod error;
pub mod lens;
pub mod mapped;
pub mod project;
pub mod warp;

pub use error::KernelError;
pub use lens::{Lens, rigid_f32};
pub use project::{DepthImage, Projection, project_points_cpu};
pub use warp::{Normalisation, RgbView, WarpMap, WarpSpec, warp_image_cpu};

/// Where kernels run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// The CPU reference, on every core (rayon).
    Cpu,
    /// The CUDA kernels on GPU 0.
    Cuda,
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
        })
    }
}

enum Backend {
    Cpu,
    #[cfg(feature = "cuda")]
    Cuda(cuda::CudaKernels),
}

/// The kernels on one device.
pub struct Kernels {
    backend: Backend,
}

impl std::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kernels({})", self.describe())
    }
}

impl Kernels {
    /// The CPU reference.
    #[must_use]
    pub fn cpu() -> Self {
        Self { backend: Backend::Cpu }
    }

    /// Kernels on `device`; [`KernelError::Unavailable`] says why a GPU cannot be used.
    pub fn new(device: Device) -> Result<Self, KernelError> {
        match device {
            Device::Cpu => Ok(Self::cpu()),
            #[cfg(feature = "cuda")]
            Device::Cuda => Ok(Self { backend: Backend::Cuda(cuda::CudaKernels::new(0)?) }),
            #[cfg(not(feature = "cuda"))]
            Device::Cuda => Err(KernelError::Unavailable(
                "this build has no CUDA kernels (built without the `cuda` feature of nines-kernels)".into(),
            )),
        }
    }

    /// The device these kernels run on.
    #[must_use]
    pub fn device(&self) -> Device {
        match self.backend {
            Backend::Cpu => Device::Cpu,
            #[cfg(feature = "cuda")]
            Backend::Cuda(_) => Device::Cuda,
        }
    }

    /// The device in words (the GPU's name for CUDA).
    #[must_use]
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Cpu => format!("cpu ({} threads)", rayon::current_num_threads()),
            #[cfg(feature = "cuda")]
            Backend::Cuda(k) => format!("cuda ({})", k.name()),
        }
    }

    /// Projects `points` with a z-buffer: camera z of the nearest point per
    /// pixel, 0 where none falls.
    pub fn project_points(
        &self,
        points: &[[f32; 3]],
        projection: &Projection,
    ) -> Result<DepthImage, KernelError> {
        match &self.backend {
            Backend::Cpu => Ok(project_points_cpu(points, projection)),
            #[cfg(feature = "cuda")]
            Backend::Cuda(k) => k.project_points(points, projection),
        }
    }

    /// Warps `src` as `spec` says into `out` (3 planes of out_width * out_height).
    pub fn warp_image(&self, src: &RgbView<'_>, spec: &WarpSpec, out: &mut [f32]) -> Result<(), KernelError> {
        check_warp_lengths(src, spec, out)?;
        match &self.backend {
            Backend::Cpu => {
                warp_image_cpu(src, spec, out);
                Ok(())
            }
            #[cfg(feature = "cuda")]
            Backend::Cuda(k) => k.warp_image(src, spec, out),
        }
    }
}

/// The input and output lengths a warp needs, checked before any kernel runs.
pub(crate) fn check_warp_lengths(src: &RgbView<'_>, spec: &WarpSpec, out: &[f32]) -> Result<(), KernelError> {
    if src.data.len() != src.width as usize * src.height as usize * 3 {
        return Err(KernelError::Input(format!(
            "image of {}x{} needs {} RGB bytes, got {}",
            src.width,
            src.height,
            src.width as usize * src.height as usize * 3,
            src.data.len()
        )));
    }
    if out.len() != spec.output_len() {
        return Err(KernelError::Input(format!(
            "output holds {} floats, the warp writes {}",
            out.len(),
            spec.output_len()
        )));
    }
    Ok(())
}
