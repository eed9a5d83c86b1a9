//! Builds the TensorFlow op library.
//!
//! The Rust kernels always build. When TensorFlow is found (through the
//! Python given by `TF_SWAP_PYTHON`, else the project's `.venv`, else
//! `python3`), `cpp_ops/*.cc` are compiled against it and their object files
//! are linked straight into the cdylib: through a static archive the linker
//! would drop them (nothing in Rust references the `REGISTER_OP`
//! initializers) and the library would load with no ops.
//!
//! `TF_SWAP_OPS=1` makes a missing TensorFlow an error (CI, `make`);
//! `TF_SWAP_OPS=0` skips the ops (Rust-only tests and lints).
//! `TF_SWAP_TF_CFLAGS` / `TF_SWAP_TF_LFLAGS` (space-separated) override the
//! flags TensorFlow reports.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

struct TfFlags {
    compile: Vec<String>,
    link: Vec<String>,
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=cpp_ops");
    for var in [
        "TF_SWAP_OPS",
        "TF_SWAP_PYTHON",
        "TF_SWAP_TF_CFLAGS",
        "TF_SWAP_TF_LFLAGS",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let mode = env::var("TF_SWAP_OPS").unwrap_or_default();
    if mode == "0" {
        return;
    }
    match tensorflow_flags() {
        Ok(flags) => build_ops(&flags),
        Err(why) if mode == "1" => panic!("TF_SWAP_OPS=1 but TensorFlow is unusable: {why}"),
        Err(why) => println!("cargo:warning=building without the TensorFlow ops: {why}"),
    }
}

fn python() -> PathBuf {
    if let Some(python) = env::var_os("TF_SWAP_PYTHON") {
        return python.into();
    }
    let venv = Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap()).join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

fn tensorflow_flags() -> Result<TfFlags, String> {
    if let (Ok(compile), Ok(link)) = (env::var("TF_SWAP_TF_CFLAGS"), env::var("TF_SWAP_TF_LFLAGS"))
    {
        let split = |s: &str| s.split_whitespace().map(str::to_owned).collect();
        return Ok(TfFlags {
            compile: split(&compile),
            link: split(&link),
        });
    }
    let python = python();
    let script = "import tensorflow as tf\n\
                  print('\\n'.join(tf.sysconfig.get_compile_flags()))\n\
                  print('--')\n\
                  print('\\n'.join(tf.sysconfig.get_link_flags()))";
    let out = Command::new(&python)
        .args(["-c", script])
        .env("TF_CPP_MIN_LOG_LEVEL", "3")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} cannot import tensorflow: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let (compile, link) = text
        .split_once("\n--\n")
        .ok_or("unexpected output from tf.sysconfig")?;
    Ok(TfFlags {
        compile: compile.lines().map(str::to_owned).collect(),
        link: link.lines().map(str::to_owned).collect(),
    })
}

fn build_ops(flags: &TfFlags) {
    let mut sources: Vec<PathBuf> = std::fs::read_dir("cpp_ops")
        .expect("cpp_ops/ is readable")
        .map(|entry| entry.expect("cpp_ops/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "cc"))
        .collect();
    sources.sort();
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .files(&sources)
        .include("cpp_ops")
        .cargo_metadata(false)
        .warnings(true);
    for flag in &flags.compile {
        // TF's headers as system headers: their warnings are not ours.
        match flag.strip_prefix("-I") {
            Some(dir) => build.flag("-isystem").flag(dir),
            None => build.flag(flag),
        };
    }
    for object in build.compile_intermediates() {
        println!("cargo:rustc-link-arg-cdylib={}", object.display());
    }
    for flag in &flags.link {
        println!("cargo:rustc-link-arg-cdylib={flag}");
        if let Some(dir) = flag.strip_prefix("-L") {
            println!("cargo:rustc-link-arg-cdylib=-Wl,-rpath,{dir}");
            // A TensorFlow upgrade must rebuild the library.
            println!("cargo:rerun-if-changed={dir}/libtensorflow_framework.so.2");
        }
    }
    println!("cargo:rustc-link-arg-cdylib=-lstdc++");
    println!("cargo:rustc-link-arg-cdylib=-Wl,--no-undefined");
}
