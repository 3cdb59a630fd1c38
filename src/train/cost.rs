//! What training cost: FLOPs by formula, peak memory by measurement.

use tch::Device;

/// Training FLOPs per token processed and the formula, in words.
///
/// Full training: `6·N` per token (forward 2·N, backward 4·N: gradients of the
/// activations and of the weights; Kaplan et al. 2020). LoRA: the frozen base
/// costs its forward (2·N_base) and the activation gradients (2·N_base) but no
/// weight gradients, the adapters the full 6·N_lora: `4·N_base + 6·N_lora`.
/// Attention's sequence-length term is left out, as in the 6·N·T rule; the
/// embedding table counts as if it were a matrix product (a small over-estimate).
pub fn flops_per_token(trainable: u64, frozen: u64) -> (f64, String) {
    if frozen == 0 {
        (6.0 * trainable as f64, format!("6 × {trainable} trainable parameters × tokens processed (full training)"))
    } else {
        (
            4.0 * frozen as f64 + 6.0 * trainable as f64,
            format!("(4 × {frozen} frozen + 6 × {trainable} adapter parameters) × tokens processed (LoRA: no weight gradients for the base)"),
        )
    }
}

/// Peak resident set size of this process (VmHWM), where /proc tells it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm(&status)
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let mut parts = line["VmHWM:".len()..].split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => Some(value * 1024),
        Some(_) => None,
    }
}

/// Memory in use on a CUDA device, sampled after each optimizer step.
///
/// tch exposes none of libtorch's allocator statistics, so this asks the CUDA
/// runtime that libtorch loaded (`cudaMemGetInfo`: total − free). libtorch's
/// caching allocator keeps what it reserved, so a sample after a step bounds
/// that step's peak from above; it includes the CUDA context (~0.5 GiB) and any
/// other process on the same GPU.
pub(crate) struct GpuMemory {
    index: Option<i32>,
    pub peak: Option<u64>,
}

impl GpuMemory {
    pub(crate) fn new(device: Device) -> GpuMemory {
        let index = match device {
            Device::Cuda(i) => i32::try_from(i).ok(),
            _ => None,
        };
        GpuMemory { index, peak: None }
    }

    pub(crate) fn sample(&mut self) {
        if let Some(used) = self.index.and_then(cuda_used_bytes) {
            self.peak = Some(self.peak.map_or(used, |p| p.max(used)));
        }
    }

    /// Why there is no number, when there is none on a GPU.
    pub(crate) fn note(&self) -> Option<String> {
        match (self.index, self.peak) {
            (None, _) => None,
            (Some(_), Some(_)) => Some("device memory in use after each step (cudaMemGetInfo: total − free), CUDA context and other processes included".into()),
            (Some(_), None) => Some("not measured: the CUDA runtime library (libcudart) could not be opened; tch exposes no allocator statistics".into()),
        }
    }
}

type CudaGetInfo = unsafe extern "C" fn(*mut usize, *mut usize) -> i32;
type CudaGetDevice = unsafe extern "C" fn(*mut i32) -> i32;
type CudaSetDevice = unsafe extern "C" fn(i32) -> i32;

fn cudart() -> Option<&'static libloading::Library> {
    static LIB: std::sync::OnceLock<Option<libloading::Library>> = std::sync::OnceLock::new();
    LIB.get_or_init(|| {
        // The soname libtorch_cuda linked is already loaded; opening it by name returns that copy.
        ["libcudart.so.13", "libcudart.so.12", "libcudart.so"].into_iter().find_map(|name| {
            // SAFETY: the CUDA runtime's initialisers are already run (libtorch loaded it), or are side-effect free.
            unsafe { libloading::Library::new(name) }.ok()
        })
    })
    .as_ref()
}

fn cuda_used_bytes(index: i32) -> Option<u64> {
    let lib = cudart()?;
    // SAFETY: signatures as in cuda_runtime_api.h; pointers are to live locals; the
    // thread's current device is restored before returning.
    unsafe {
        let get_info = lib.get::<CudaGetInfo>(b"cudaMemGetInfo\0").ok()?;
        let get_device = lib.get::<CudaGetDevice>(b"cudaGetDevice\0").ok()?;
        let set_device = lib.get::<CudaSetDevice>(b"cudaSetDevice\0").ok()?;
        let mut current = 0i32;
        if get_device(&mut current) != 0 {
            return None;
        }
        if current != index && set_device(index) != 0 {
            return None;
        }
        let (mut free, mut total) = (0usize, 0usize);
        let ok = get_info(&mut free, &mut total) == 0;
        if current != index {
            set_device(current);
        }
        ok.then(|| total.saturating_sub(free) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas() {
        assert_eq!(flops_per_token(100, 0).0, 600.0);
        assert_eq!(flops_per_token(10, 1000).0, 4060.0);
    }

    #[test]
    fn vm_hwm_is_read_in_bytes() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t    1234 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(1234 * 1024));
        assert_eq!(parse_vm_hwm("Name: x\n"), None);
        #[cfg(target_os = "linux")]
        assert!(peak_rss_bytes().is_some_and(|b| b > 0));
    }
}
