//! The kernel sources compile with NVRTC for every bundled model's shapes (NVRTC runs on the CPU, so no GPU is
//! needed; the test skips with a printed reason when libnvrtc is not on the library path; `.ci/run` installs it
//! from NVIDIA's `nvidia-cuda-nvrtc` wheel).

use duet_gpu::kernels::{KERNEL_NAMES, KernelConfig, compile};
use duet_gpu::probe::{Library, require_library};
use duet_sim::model::ModelSpec;

#[test]
fn kernels_compile_to_ptx_for_every_bundled_model() {
    if let Err(e) = require_library(Library::Nvrtc) {
        println!("SKIP kernels_compile_to_ptx_for_every_bundled_model: {e}");
        return;
    }
    for (model, _) in ModelSpec::bundled() {
        let cfg = KernelConfig::for_model(&model).unwrap();
        let ptx = compile(&cfg, None).unwrap_or_else(|e| panic!("{}: {e}", model.name));
        assert!(ptx.contains(".target sm_90"), "{}: PTX is not for compute 9.0", model.name);
        for name in KERNEL_NAMES {
            assert!(ptx.contains(&format!(".entry {name}(")), "{}: no entry {name}", model.name);
        }
        // Register arrays are indexed with constants only: no local-memory stack frame in the attention kernels.
        for name in ["decode_attention", "prefill_attention"] {
            let body = ptx.split(&format!(".entry {name}(")).nth(1).unwrap();
            let body = body.split(".entry ").next().unwrap();
            assert!(!body.contains(".local"), "{}: {name} uses local memory", model.name);
        }
        println!("{}: {} bytes of PTX, {} kernels", model.name, ptx.len(), KERNEL_NAMES.len());
    }
}

#[test]
fn a_broken_source_reports_the_compiler_log() {
    if require_library(Library::Nvrtc).is_err() {
        println!("SKIP a_broken_source_reports_the_compiler_log: NVRTC not found");
        return;
    }
    // A head size the sources cannot take (ELEMS = 0 leaves zero-length arrays): the error carries NVRTC's log.
    let cfg = KernelConfig { head_dim: 16, group: 4, block_tokens: 16 };
    match compile(&cfg, None) {
        Err(e) => assert!(e.to_string().contains("NVRTC could not compile duet_kernels.cu"), "{e}"),
        Ok(_) => println!("NVRTC accepted head size 16 (zero-length arrays allowed); nothing to check"),
    }
}
