//! The declared `rust-version` is what the locked dependencies really need: no package in `Cargo.lock` declares a
//! newer `rust-version` than the workspace's (read with `cargo metadata --locked --offline`). Offline, cargo can
//! only read packages already downloaded: a build downloads those of the host platform, so where the others (for
//! Android, Windows, wasm) are absent the check covers the host's dependency graph (`--filter-platform`), and says
//! so.

use std::process::Command;

fn version(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

#[test]
fn no_locked_dependency_needs_a_newer_rustc_than_declared() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let metadata = |extra: &[&str]| {
        Command::new(&cargo)
            .args(["metadata", "--format-version", "1", "--locked", "--offline"])
            .args(extra)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("run cargo metadata")
    };
    let mut o = metadata(&[]);
    if !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--offline was specified") {
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        let v = Command::new(rustc).arg("-vV").output().expect("run rustc -vV");
        let v = String::from_utf8_lossy(&v.stdout).into_owned();
        let host = v.lines().find_map(|l| l.strip_prefix("host: ")).expect("rustc -vV names its host").to_string();
        println!("other platforms' packages are not downloaded: checking the {host} dependency graph only");
        o = metadata(&["--filter-platform", &host]);
    }
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
