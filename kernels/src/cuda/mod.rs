//! CUDA versions of the kernels: `kernels.cu` compiled with NVRTC when a
//! [`CudaKernels`] is made, the driver and NVRTC loaded at run time (so this
//! builds, and fails politely, where CUDA is absent).

use std::sync::Arc;
use std::time::Instant;

use cudarc::driver::{CudaContext, CudaFunction, CudaStream, LaunchConfig, PushKernelArg, sys};
use cudarc::nvrtc::{CompileOptions, compile_ptx_with_opts};

use crate::error::KernelError;
use crate::project::{DepthImage, Projection};
use crate::warp::{RgbView, WarpSpec};

const SOURCE: &str = include_str!("kernels.cu");
const BLOCK: u32 = 256;

fn driver(what: &'static str) -> impl Fn(cudarc::driver::DriverError) -> KernelError {
    move |e| KernelError::Cuda(format!("{what}: {e}"))
}

/// The compiled kernels on one GPU.
pub struct CudaKernels {
    stream: Arc<CudaStream>,
    project: CudaFunction,
    warp: CudaFunction,
    name: String,
}

impl std::fmt::Debug for CudaKernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaKernels").field("device", &self.name).finish_non_exhaustive()
    }
}

/// Seconds one projection took on the GPU.
#[derive(Debug, Clone, Copy)]
pub struct CudaTiming {
    /// The kernel alone, points already on the GPU (CUDA events).
    pub kernel_secs: f64,
    /// Upload, zero, kernel, download (wall clock).
    pub end_to_end_secs: f64,
}

impl CudaKernels {
    /// Loads the driver and NVRTC, picks GPU `ordinal`, compiles the kernels.
    pub fn new(ordinal: usize) -> Result<Self, KernelError> {
        // The loaders panic when a library is missing; ask first.
        // SAFETY: only probes for the shared libraries, calls nothing in them.
        #[expect(unsafe_code, reason = "cudarc's library probes are unsafe functions")]
        let present = unsafe { sys::is_culib_present() && cudarc::nvrtc::sys::is_culib_present() };
        if !present {
            return Err(KernelError::Unavailable(
                "the CUDA driver (libcuda.so) or NVRTC (libnvrtc.so) was not found; install the \
                 NVIDIA driver and the CUDA toolkit's NVRTC, or add their folder to LD_LIBRARY_PATH"
                    .into(),
            ));
        }
        let ctx =
            CudaContext::new(ordinal).map_err(|e| KernelError::Unavailable(format!("GPU {ordinal}: {e}")))?;
        let name = ctx.name().map_err(driver("device name"))?;
        let (major, minor) = ctx.compute_capability().map_err(driver("compute capability"))?;
        let options = CompileOptions {
            // No contraction into FMA: the CPU reference rounds every step.
            fmad: Some(false),
            options: vec![format!("--gpu-architecture=compute_{major}{minor}")],
            ..CompileOptions::default()
        };
        let ptx =
            compile_ptx_with_opts(SOURCE, options).map_err(|e| KernelError::Cuda(format!("NVRTC: {e}")))?;
        let module = ctx.load_module(ptx).map_err(driver("loading the module"))?;
        Ok(Self {
            project: module.load_function("project_points").map_err(driver("project_points"))?,
            warp: module.load_function("warp_image").map_err(driver("warp_image"))?,
            stream: ctx.default_stream(),
            name,
        })
    }

    /// The GPU's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// [`crate::project::project_points_cpu`] on the GPU.
    pub fn project_points(
        &self,
        points: &[[f32; 3]],
        projection: &Projection,
    ) -> Result<DepthImage, KernelError> {
        self.project_timed(points, projection).map(|(depth, _)| depth)
    }

    /// Projects and times the kernel alone (CUDA events) and the whole call.
    pub fn project_timed(
        &self,
        points: &[[f32; 3]],
        projection: &Projection,
    ) -> Result<(DepthImage, CudaTiming), KernelError> {
        let started = Instant::now();
        let n = u32::try_from(points.len()).map_err(|_| {
            KernelError::Input(format!("{} points exceed the 2^32 a launch takes", points.len()))
        })?;
        let (w, h) = (projection.lens.width, projection.lens.height);
        let s = &self.stream;
        let device_points = s.clone_htod(points.as_flattened()).map_err(driver("uploading points"))?;
        let params = s.clone_htod(&projection.params()).map_err(driver("uploading parameters"))?;
        let mut zbuf = s.alloc_zeros::<u32>(w as usize * h as usize).map_err(driver("z-buffer"))?;
        let timing = Some(sys::CUevent_flags::CU_EVENT_DEFAULT);
        let start = s.record_event(timing).map_err(driver("event"))?;
        if n > 0 {
            let cfg = LaunchConfig {
                grid_dim: (n.div_ceil(BLOCK), 1, 1),
                block_dim: (BLOCK, 1, 1),
                shared_mem_bytes: 0,
            };
            let mut launch = s.launch_builder(&self.project);
            launch.arg(&device_points).arg(&n).arg(&params).arg(&mut zbuf);
            // SAFETY: the arguments match `project_points` in kernels.cu: n points of 3 floats,
            // the 26-float parameter block, and a w*h z-buffer, which bounds every index it writes.
            #[expect(unsafe_code, reason = "kernel launches are unsafe in cudarc")]
            unsafe { launch.launch(cfg) }.map_err(driver("launching project_points"))?;
        }
        let end = s.record_event(timing).map_err(driver("event"))?;
        let host = s.clone_dtoh(&zbuf).map_err(driver("downloading depth"))?;
        let kernel_ms = start.elapsed_ms(&end).map_err(driver("event timing"))?;
        let depth = DepthImage::from_zbuffer(w, h, host.into_iter());
        let timing = CudaTiming {
            kernel_secs: f64::from(kernel_ms) / 1e3,
            end_to_end_secs: started.elapsed().as_secs_f64(),
        };
        Ok((depth, timing))
    }

    /// [`crate::warp::warp_image_cpu`] on the GPU.
    pub fn warp_image(&self, src: &RgbView<'_>, spec: &WarpSpec, out: &mut [f32]) -> Result<(), KernelError> {
        let s = &self.stream;
        let device_src = s.clone_htod(src.data).map_err(driver("uploading the image"))?;
        let params = s.clone_htod(&spec.params()).map_err(driver("uploading parameters"))?;
        let mut device_out = s.alloc_zeros::<f32>(out.len()).map_err(driver("output"))?;
        let block = (16u32, 16u32, 1u32);
        let cfg = LaunchConfig {
            grid_dim: (spec.out_width.div_ceil(block.0), spec.out_height.div_ceil(block.1), 1),
            block_dim: block,
            shared_mem_bytes: 0,
        };
        let mut launch = s.launch_builder(&self.warp);
        launch.arg(&device_src).arg(&src.width).arg(&src.height).arg(&params).arg(&mut device_out);
        // SAFETY: matches `warp_image` in kernels.cu: a width*height*3 byte image (checked by the
        // caller), the 35-float block, and 3 * out_width * out_height outputs (checked by the caller).
        #[expect(unsafe_code, reason = "kernel launches are unsafe in cudarc")]
        unsafe { launch.launch(cfg) }.map_err(driver("launching warp_image"))?;
        s.memcpy_dtoh(&device_out, out).map_err(driver("downloading the image"))?;
        Ok(())
    }
}
