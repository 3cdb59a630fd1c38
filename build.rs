//! Embeds libtorch's library folder as the binary's run path, so `cargo run`,
//! `cargo test` and the installed binary find libtorch without LD_LIBRARY_PATH.
//! (It is a RUNPATH: LD_LIBRARY_PATH still wins, which is how a GPU machine
//! points the same binary at its CUDA-enabled libtorch.)
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=build.rs");
    if let Ok(dir) = std::env::var("LIBTORCH") {
        let lib = PathBuf::from(dir).join("lib");
        let lib = lib.canonicalize().unwrap_or(lib);
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
}
