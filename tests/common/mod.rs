//! Helpers shared by the integration tests that run the `duet` binary.
// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs the `duet` binary with `args`.
pub fn duet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_duet")).args(args).output().expect("run duet")
}

/// A fresh, empty temporary folder named after the test crate (`kind`), this process and `name`.
pub fn tmp(kind: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("duet-{kind}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The development copies of the public data (`../shared` beside the checkout), or `None` with a printed reason
/// for the test that needs them to skip.
pub fn shared() -> Option<PathBuf> {
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared");
    if shared.join("traces").is_dir() {
        Some(shared)
    } else {
        eprintln!(
            "SKIPPED: {} not found (../shared, the local mirror of the public data, is not next to this checkout)",
            shared.display()
        );
        None
    }
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
