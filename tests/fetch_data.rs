//! `scripts/fetch-data.sh` offline, against local mirrors (`file://` base URL): a good file is fetched and
//! verified, a corrupted one is refused by its checksum and not kept, a missing one is named, a present one is
//! kept; and, when `../shared` is next to the checkout, every real data set verifies against its copy there.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fetch(data: &Path, mirror: &Path, manifest: Option<&Path>, names: &[&str]) -> Output {
    let mut c = Command::new("bash");
    c.arg(root().join("scripts/fetch-data.sh"))
        .args(names)
        .env("DUET_DATA", data)
        .env("DUET_DATA_MIRROR", format!("file://{}", mirror.display()));
    if let Some(m) = manifest {
        c.env("DUET_DATA_MANIFEST", m);
    }
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn sha256(p: &Path) -> String {
    let o = Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8_lossy(&o.stdout).split_whitespace().next().unwrap().to_string()
}

#[test]
fn a_mirror_with_a_good_a_corrupted_and_a_missing_file() {
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("SKIPPED: no curl on this machine");
        return;
    }
    let dir = common::tmp("fetch", "mirror");
    let mirror = dir.join("mirror");
    std::fs::create_dir_all(mirror.join("traces")).unwrap();
    std::fs::write(mirror.join("traces/good.csv"), "a,b\n1,2\n").unwrap();
    std::fs::write(mirror.join("traces/bad.csv"), "tampered\n").unwrap();
    let good_sha = sha256(&mirror.join("traces/good.csv"));
    let manifest = dir.join("manifest.tsv");
    let line = |name: &str, path: &str, bytes: usize, sha: &str| {
        format!("{name}\ttraces/{path}\thttps://example.invalid/{path}\t{bytes}\t{sha}\tlicence of {name}\n")
    };
    std::fs::write(
        &manifest,
        [
            line("good", "good.csv", 8, &good_sha),
            line("bad", "bad.csv", 8, &good_sha),
            line("missing", "missing.csv", 8, &good_sha),
        ]
        .concat(),
    )
    .unwrap();
    let data = dir.join("data");
    let o = fetch(&data, &mirror, Some(&manifest), &["good"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("fetched good") && text(&o).contains("licence of good"), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(data.join("traces/good.csv")).unwrap(), "a,b\n1,2\n");
    // Again: kept, not fetched.
    let o = fetch(&data, &mirror, Some(&manifest), &["good"]);
    assert!(o.status.success() && text(&o).contains("already present"), "{}", text(&o));
    // A corrupted file: refused by its checksum, nothing kept; exit 1.
    let o = fetch(&data, &mirror, Some(&manifest), &["bad"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("error   bad") && text(&o).contains(&good_sha), "{}", text(&o));
    assert!(!data.join("traces/bad.csv").exists() && !data.join("traces/bad.csv.part").exists());
    // A missing file: named; exit 1.
    let o = fetch(&data, &mirror, Some(&manifest), &["missing"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("could not fetch") && text(&o).contains("missing.csv"), "{}", text(&o));
    // An unknown name lists the known ones.
    let o = fetch(&data, &mirror, Some(&manifest), &["nope"]);
    assert!(!o.status.success() && text(&o).contains("known: good bad missing"), "{}", text(&o));
}

#[test]
fn every_real_data_set_verifies_against_the_shared_copies() {
    let Some(shared) = common::shared() else { return };
    let data = common::tmp("fetch", "real");
    let o = fetch(&data, &shared, None, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(text(&o).matches("SHA-256 verified").count(), 9, "{}", text(&o));
}
