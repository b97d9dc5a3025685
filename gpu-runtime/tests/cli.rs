//! The `duet-gpu` command line on this machine: library report, bad input, and the clear error without a GPU.

use std::process::Command;

fn duet_gpu(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_duet-gpu")).args(args).output().expect("run duet-gpu");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn has_driver() -> bool {
    duet_gpu::probe::require_driver().is_ok()
}

#[test]
fn calibrate_without_a_gpu_fails_with_the_clear_message_and_writes_nothing() {
    if has_driver() {
        println!("SKIP: this machine has a CUDA driver and device; the no-GPU path cannot be observed here");
        return;
    }
    let dir = std::env::temp_dir().join(format!("duet-gpu-cli-{}", std::process::id()));
    for args in [
        vec!["calibrate", "--out", dir.to_str().unwrap()],
        vec!["calibrate", "--out", dir.to_str().unwrap(), "--quick", "--sms", "16"],
        vec!["check"],
        vec!["info"],
        vec!["replay", "--out", dir.to_str().unwrap(), "--policy", "duet", "--granularity", "green"],
    ] {
        let (code, _out, err) = duet_gpu(&args);
        assert_ne!(code, 0, "{args:?}");
        assert!(err.starts_with("error: no CUDA driver found: none of libcuda.so"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(!dir.exists(), "nothing is created before the driver check");
}

#[test]
fn libs_reports_every_library_and_succeeds_anywhere() {
    let (code, out, _) = duet_gpu(&["libs"]);
    assert_eq!(code, 0);
    for lib in ["cuda:", "nvrtc:", "cublasLt:"] {
        assert!(out.lines().any(|l| l.starts_with(lib)), "{out}");
    }
}

#[test]
fn bad_model_arguments_are_clear_errors() {
    let (code, _, err) = duet_gpu(&["calibrate", "--out", "/nonexistent/x", "--model", "gpt-7"]);
    assert_ne!(code, 0);
    assert!(err.contains("gpt-7"), "{err}");
    let (code, _, err) = duet_gpu(&["check", "--tp", "3"]);
    assert_ne!(code, 0);
    assert!(err.contains("3"), "{err}");
}
