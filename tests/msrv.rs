//! The declared `rust-version` is what the locked dependencies really need: no package in `Cargo.lock` declares a
//! newer `rust-version` than the workspace's (read with `cargo metadata --locked --offline`).

use std::process::Command;

fn version(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

#[test]
fn no_locked_dependency_needs_a_newer_rustc_than_declared() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let o = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(o.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&o.stderr));
    let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let declared = env!("CARGO_PKG_RUST_VERSION");
    assert!(!declared.is_empty(), "the workspace declares no rust-version");
    let members: Vec<&str> = m["workspace_members"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let mut newer = Vec::new();
    for p in m["packages"].as_array().unwrap() {
        if members.contains(&p["id"].as_str().unwrap()) {
            continue;
        }
        if let Some(rv) = p["rust_version"].as_str()
            && version(rv) > version(declared)
        {
            newer.push(format!("{} {} needs {rv}", p["name"].as_str().unwrap(), p["version"].as_str().unwrap()));
        }
    }
    assert!(newer.is_empty(), "rust-version {declared} is too old for the lockfile: {}", newer.join(", "));
}
