//! The kernel sources compile with NVRTC for every bundled model's shapes (NVRTC runs on the CPU, so no GPU is
//! needed; the test skips with a printed reason when libnvrtc is not on the library path; `.ci/run` installs it
//! from NVIDIA's `nvidia-cuda-nvrtc` wheel).

use duet_gpu::kernels::{KERNEL_NAMES, KernelConfig, compile_ptx as compile};
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
        for name in ["decode_attention", "prefill_attention", "prefill_attention_tc"] {
            let body = ptx.split(&format!(".entry {name}(")).nth(1).unwrap();
            let body = body.split(".entry ").next().unwrap();
            assert!(!body.contains(".local"), "{}: {name} uses local memory", model.name);
        }
        // The tensor-core kernel really issues bf16 tensor-core instructions.
        let tc = ptx.split(".entry prefill_attention_tc(").nth(1).unwrap();
        assert!(tc.contains("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32"), "{}: no mma", model.name);
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

/// `ptxas` from `$DUET_PTXAS` or the PATH, if any.
fn ptxas() -> Option<std::path::PathBuf> {
    if let Ok(p) = std::env::var("DUET_PTXAS") {
        return Some(p.into());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("ptxas")).find(|p| p.is_file())
}

#[test]
fn kernels_assemble_for_sm_90_without_spills() {
    if require_library(Library::Nvrtc).is_err() {
        println!("SKIP kernels_assemble_for_sm_90_without_spills: NVRTC not found");
        return;
    }
    let Some(ptxas) = ptxas() else {
        println!("SKIP kernels_assemble_for_sm_90_without_spills: no ptxas (set DUET_PTXAS or put it on PATH)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("duet-gpu-ptxas-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (model, _) in ModelSpec::bundled() {
        let ptx = compile(&KernelConfig::for_model(&model).unwrap(), None).unwrap();
        let (src, bin) = (dir.join("k.ptx"), dir.join("k.cubin"));
        std::fs::write(&src, ptx).unwrap();
        let out = std::process::Command::new(&ptxas)
            .args(["-arch=sm_90", "-v"])
            .arg(&src)
            .arg("-o")
            .arg(&bin)
            .output()
            .expect("run ptxas");
        let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{}: ptxas failed:\n{log}", model.name);
        let spills: Vec<&str> = log.lines().filter(|l| l.contains("spill stores")).collect();
        assert_eq!(spills.len(), KERNEL_NAMES.len(), "{}: one report per kernel:\n{log}", model.name);
        for l in &spills {
            assert!(l.contains(" 0 bytes spill stores, 0 bytes spill loads"), "{}: {l}", model.name);
        }
        println!("{}: {} kernels assembled for sm_90, no spills", model.name, spills.len());
    }
    std::fs::remove_dir_all(dir).unwrap();
}
