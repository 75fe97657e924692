//! The error type of nines-kernels.

/// What can go wrong running a kernel.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// No usable GPU, driver or NVRTC; says what is missing and how to get it.
    #[error("CUDA is not available: {0}")]
    Unavailable(String),
    /// The CUDA driver or compiler refused a call.
    #[error("CUDA: {0}")]
    Cuda(String),
    /// Inputs of the wrong size.
    #[error("kernel input: {0}")]
    Input(String),
}
