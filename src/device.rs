//! Where tensors live: CPU, or CUDA when a CUDA-enabled libtorch is present.
//!
//! The binary links only libtorch_cpu (the linker drops the unused
//! `-ltorch_cuda`), so CUDA is registered at run time: loading
//! `libtorch_cuda.so` with RTLD_GLOBAL before the first tensor op makes
//! `tch::Cuda::is_available()` true on a GPU machine. On a CPU machine the
//! library is absent (or its driver is) and everything stays on CPU.

use std::sync::OnceLock;

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("device {0:?} is not understood: use \"auto\", \"cpu\", \"cuda\" or \"cuda:N\"")]
    Unknown(String),
    #[error("device {wanted:?} was asked for but CUDA is not available here ({reason}); use device = \"auto\" or \"cpu\"")]
    NoCuda { wanted: String, reason: String },
    #[error("device {wanted:?} was asked for but only {count} CUDA device(s) are visible")]
    NoSuchGpu { wanted: String, count: usize },
}

/// Loads libtorch's CUDA backend once; returns why not when it cannot.
pub fn cuda_backend() -> Result<(), String> {
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
            // SAFETY: loading libtorch_cuda runs its static initialisers, which only
            // register the CUDA backend with the already-loaded libtorch.
            match unsafe { Library::open(Some("libtorch_cuda.so"), RTLD_NOW | RTLD_GLOBAL) } {
                Ok(lib) => {
                    // Kept loaded for the life of the process.
                    std::mem::forget(lib);
                    Ok(())
                }
                Err(e) => Err(format!("libtorch_cuda.so not loadable: {e}")),
            }
        })
        .clone()
}

/// Whether `spec` names a device an experiment may ask for.
pub fn is_valid_name(spec: &str) -> bool {
    spec == "auto" || spec == "cpu" || spec == "cuda" || spec.strip_prefix("cuda:").is_some_and(|n| n.parse::<usize>().is_ok())
}

/// What to write instead of an unknown device name.
pub fn invalid_name_message(spec: &str) -> String {
    format!("unknown device {spec:?}: use \"auto\", \"cpu\", \"cuda\" or \"cuda:N\"")
}

/// Resolves a device setting (`auto`, `cpu`, `cuda`, `cuda:N`).
pub fn resolve(spec: &str) -> Result<tch::Device, DeviceError> {
    let want_cuda = |index: usize| -> Result<tch::Device, DeviceError> {
        cuda_backend().map_err(|reason| DeviceError::NoCuda { wanted: spec.into(), reason })?;
        if !tch::Cuda::is_available() {
            return Err(DeviceError::NoCuda { wanted: spec.into(), reason: "no CUDA device or driver".into() });
        }
        let count = tch::Cuda::device_count() as usize;
        if index >= count {
            return Err(DeviceError::NoSuchGpu { wanted: spec.into(), count });
        }
        Ok(tch::Device::Cuda(index))
    };
    match spec {
        "cpu" => Ok(tch::Device::Cpu),
        "cuda" => want_cuda(0),
        "auto" => Ok(if cuda_backend().is_ok() && tch::Cuda::is_available() { tch::Device::Cuda(0) } else { tch::Device::Cpu }),
        other => match other.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
            Some(i) => want_cuda(i),
            None => Err(DeviceError::Unknown(other.into())),
        },
    }
}

/// `cpu` or `cuda:N`, as recorded in manifests.
pub fn name(device: tch::Device) -> String {
    match device {
        tch::Device::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".into(),
    }
}

/// The device as the fingerprint names it: what can change the numbers computed there.
/// CPU: the instruction set libtorch dispatches to and the intra-op thread count
/// (reductions split across threads add in another order), e.g. `cpu avx2 2 threads`;
/// CUDA: the GPU model, e.g. `cuda:0 NVIDIA H100 80GB HBM3`.
pub fn fingerprint_name(device: tch::Device) -> String {
    match device {
        tch::Device::Cuda(i) => match gpu_model(i) {
            Some(model) => format!("cuda:{i} {model}"),
            None => format!("cuda:{i}"),
        },
        _ => {
            let n = numerics();
            format!("cpu {} {} threads", n.isa, n.threads)
        }
    }
}

/// The GPU's model name as nvidia-smi reports it (None where nvidia-smi is absent).
fn gpu_model(index: usize) -> Option<String> {
    let out = std::process::Command::new("nvidia-smi").args(["--query-gpu=name", "--format=csv,noheader", "-i", &index.to_string()]).output().ok()?;
    let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !name.is_empty()).then_some(name)
}

/// What can change CPU results besides the code and its inputs; recorded in every manifest.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Numerics {
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// The ATen CPU capability in force: `ATEN_CPU_CAPABILITY` when set, else what libtorch detects.
    pub isa: String,
    /// MKL's conditional-numerical-reproducibility branch (`MKL_CBWR`), when set.
    pub mkl_cbwr: Option<String>,
    /// libtorch's intra-op threads.
    pub threads: usize,
    /// libtorch's deterministic-algorithms switch: icdbench never sets it, so libtorch's default.
    pub deterministic_algorithms: String,
    /// The libtorch actually loaded by this process.
    pub libtorch: String,
}

impl Numerics {
    /// For records written before numerics were recorded.
    pub fn unknown() -> Numerics {
        let u = || "unknown".to_string();
        Numerics { cpu_model: u(), isa: u(), mkl_cbwr: None, threads: 0, deterministic_algorithms: u(), libtorch: u() }
    }
}

/// Reads the numerics of this process (cheap; cpuinfo is read once).
pub fn numerics() -> Numerics {
    static CPU: OnceLock<(String, String)> = OnceLock::new();
    let (model, detected) = CPU.get_or_init(|| {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| info.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_string());
        let flags: std::collections::HashSet<String> = field("flags").unwrap_or_default().split_whitespace().map(str::to_string).collect();
        let has = |f: &[&str]| f.iter().all(|x| flags.contains(*x));
        // ATen's own rule (aten/src/ATen/native/DispatchStub.cpp): AVX512 needs f, bw, vl and dq; AVX2 needs avx2 and fma.
        let isa = if has(&["avx512f", "avx512bw", "avx512vl", "avx512dq"]) {
            "avx512"
        } else if has(&["avx2", "fma"]) {
            "avx2"
        } else {
            "default"
        };
        (field("model name").unwrap_or_else(|| std::env::consts::ARCH.to_string()), isa.to_string())
    });
    let isa = std::env::var("ATEN_CPU_CAPABILITY").ok().filter(|v| !v.is_empty()).map(|v| v.to_lowercase()).unwrap_or_else(|| detected.clone());
    Numerics {
        cpu_model: model.clone(),
        isa,
        mkl_cbwr: std::env::var("MKL_CBWR").ok().filter(|v| !v.is_empty()),
        threads: tch::get_num_threads().max(1) as usize,
        deterministic_algorithms: "libtorch default".into(),
        libtorch: libtorch_version(),
    }
}

/// Pins the CPU code paths that differ between machines of one architecture: ATen's kernels
/// and MKL's branch both at AVX2 where the CPU has it (a user's own settings win). Called at
/// the start of `main`, before libtorch dispatches anything, so one fingerprint means one
/// code path on any AVX2 or AVX-512 machine.
pub fn pin_cpu_numerics() {
    if std::env::var_os("ATEN_CPU_CAPABILITY").is_some() {
        return;
    }
    let detected = numerics().isa;
    if detected == "avx512" || detected == "avx2" {
        // SAFETY (edition 2021: safe call): main has not started any other thread yet.
        std::env::set_var("ATEN_CPU_CAPABILITY", "avx2");
        if std::env::var_os("MKL_CBWR").is_none() {
            std::env::set_var("MKL_CBWR", "AVX2");
        }
    }
}

/// The libtorch this process loaded (LD_LIBRARY_PATH may point elsewhere than the build did):
/// read from the `version.py` or `build-version` beside the mapped libtorch_cpu.so.
pub fn libtorch_version() -> String {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION
        .get_or_init(|| {
            let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
            let lib = maps.lines().filter_map(|l| l.split_whitespace().nth(5)).find(|p| p.ends_with("/libtorch_cpu.so"));
            let from_files = lib.and_then(|p| {
                let torch = std::path::Path::new(p).parent()?.parent()?;
                if let Ok(v) = std::fs::read_to_string(torch.join("version.py")) {
                    let line = v.lines().find(|l| l.starts_with("__version__"))?;
                    return line.split(['\'', '"']).nth(1).map(str::to_string);
                }
                std::fs::read_to_string(torch.join("build-version")).ok().map(|v| v.trim().to_string())
            });
            from_files.unwrap_or_else(|| format!("{} (built against)", env!("ICDBENCH_LIBTORCH_VERSION")))
        })
        .clone()
}

/// A one-paragraph description of what this machine offers, for `icdbench check --device`-style output.
pub fn describe() -> String {
    let cuda = match cuda_backend() {
        Ok(()) if tch::Cuda::is_available() => format!("CUDA available: {} device(s), cuDNN {}", tch::Cuda::device_count(), tch::Cuda::cudnn_is_available()),
        Ok(()) => "libtorch_cuda loaded, but no CUDA device is visible".into(),
        Err(reason) => format!("CPU only ({reason})"),
    };
    let n = numerics();
    format!("libtorch {} · {} · {} CPU threads · CPU kernels {} ({})", n.libtorch, cuda, n.threads, n.isa, n.cpu_model)
}

/// A small forward/backward (matmul, softmax, cross-entropy) on `device`, compared with the same on CPU.
pub fn smoke_test(device: tch::Device) -> Result<String, String> {
    use tch::{Kind, Tensor};
    let run = |d: tch::Device| -> Result<(f64, Vec<f32>), String> {
        tch::manual_seed(7);
        let x = Tensor::randn([64, 128], (Kind::Float, tch::Device::Cpu)).to_device(d);
        let w = Tensor::randn([128, 32], (Kind::Float, tch::Device::Cpu)).to_device(d).set_requires_grad(true);
        let target = Tensor::arange(64, (Kind::Int64, tch::Device::Cpu)).remainder(32).to_device(d);
        let loss = x.matmul(&w).cross_entropy_for_logits(&target);
        loss.backward();
        let grad = w.grad().to_device(tch::Device::Cpu).flatten(0, -1);
        let grad: Vec<f32> = Vec::<f32>::try_from(&grad).map_err(|e| e.to_string())?;
        Ok((loss.to_device(tch::Device::Cpu).double_value(&[]), grad))
    };
    let (cpu_loss, cpu_grad) = run(tch::Device::Cpu)?;
    let (dev_loss, dev_grad) = run(device)?;
    let max_diff = cpu_grad.iter().zip(&dev_grad).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    let ok = (cpu_loss - dev_loss).abs() < 1e-3 && max_diff < 1e-3;
    let line = format!(
        "smoke test on {}: loss {dev_loss:.6} (cpu {cpu_loss:.6}), max |grad diff| {max_diff:.2e} -> {}",
        name(device),
        if ok { "ok" } else { "MISMATCH" }
    );
    if ok { Ok(line) } else { Err(line) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    #[test]
    fn cpu_resolves_and_unknown_is_rejected() {
        assert_eq!(resolve("cpu").unwrap(), tch::Device::Cpu);
        assert!(matches!(resolve("tpu"), Err(DeviceError::Unknown(_))));
        let auto = resolve("auto").unwrap();
        assert_eq!(name(auto), if tch::Cuda::is_available() { "cuda:0" } else { "cpu" });
    }

    /// A tiny forward/backward through libtorch: a linear least-squares step lowers the loss.
    #[test]
    fn tiny_forward_backward_on_cpu() {
        tch::manual_seed(0);
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let lin = tch::nn::linear(vs.root(), 4, 1, Default::default());
        let x = Tensor::randn([32, 4], (Kind::Float, tch::Device::Cpu));
        let w = Tensor::from_slice(&[1.0f32, -2.0, 0.5, 3.0]).reshape([4, 1]);
        let y = x.matmul(&w);
        let mut opt = tch::nn::OptimizerConfig::build(tch::nn::Sgd::default(), &vs, 0.1).unwrap();
        use tch::nn::Module;
        let loss0 = (lin.forward(&x) - &y).pow_tensor_scalar(2).mean(Kind::Float).double_value(&[]);
        for _ in 0..50 {
            let loss = (lin.forward(&x) - &y).pow_tensor_scalar(2).mean(Kind::Float);
            opt.backward_step(&loss);
        }
        let loss1 = (lin.forward(&x) - &y).pow_tensor_scalar(2).mean(Kind::Float).double_value(&[]);
        assert!(loss0 > 1.0, "initial loss {loss0}");
        assert!(loss1 < loss0 * 0.01, "loss went {loss0} -> {loss1}");
        assert!(lin.ws.grad().defined());
    }
}
