//! `scripts/device/first-contact.sh` on this machine: without a driver it stops after the driver step with the
//! driver's message and exit 3 in seconds; with a fake `duet-gpu` it keeps going past a failed step, caps a step
//! at the time left before its deadline, skips steps that no longer fit, and packs what a cut-short step wrote.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("duet-first-contact-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn script(out: &Path, work: &Path, bin: &Path, env: &[(&str, &str)]) -> (i32, String, Duration) {
    let t = Instant::now();
    let mut c = Command::new("bash");
    c.arg(root().join("scripts/device/first-contact.sh")).arg(out).current_dir(root());
    c.env("DUET_GPU_BIN", bin).env("DUET_WORK", work);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().expect("run bash");
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    (o.status.code().unwrap_or(-1), text, t.elapsed())
}

fn rows(out: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(out.join("steps.csv")).unwrap();
    text.lines().skip(1).map(|l| l.split(',').map(str::to_string).collect()).collect()
}

#[test]
fn without_a_driver_it_stops_after_the_driver_step_with_exit_3() {
    if duet_gpu::probe::require_driver().is_ok() {
        println!("SKIP: this machine has a CUDA driver; the no-driver exit cannot be observed here");
        return;
    }
    let (out, work) = (tmp("nodriver"), tmp("nodriver-work"));
    let (code, text, took) = script(&out, &work, Path::new(env!("CARGO_BIN_EXE_duet-gpu")), &[]);
    assert_eq!(code, 3, "{text}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(text.contains("error: no CUDA driver found"), "{text}");
    assert!(text.contains("the driver step failed: stopping here (exit 3)"), "{text}");
    let steps: Vec<String> = rows(&out).into_iter().map(|r| format!("{}:{}", r[0], r[4])).collect();
    assert_eq!(steps, ["facts:ok", "libs:ok", "info:failed"]);
    assert!(out.join("log.txt").is_file() && out.join("first-contact.tar.gz").is_file());
}

#[test]
fn a_failed_step_does_not_stop_the_rest_and_the_deadline_caps_and_skips() {
    let (out, work) = (tmp("fake"), tmp("fake-work"));
    let fake = work.join("..").join(format!("fake-duet-gpu-{}", std::process::id()));
    // A fake duet-gpu: `check` fails; `replay` writes a partial result, then hangs until it is killed.
    std::fs::write(
        &fake,
        r#"#!/usr/bin/env bash
case "$1" in
  check) echo "check rmsnorm -> FAILED"; exit 1 ;;
  replay)
    while [ $# -gt 0 ]; do [ "$1" = --out ] && out=$2; shift; done
    mkdir -p "$out"; printf 'ticket,sms\n0,132\n' > "$out/steps.partial.csv"; echo "replaying"; sleep 100 ;;
  *) echo "fake $1" ;;
esac
"#,
    )
    .unwrap();
    let chmod = Command::new("chmod").arg("+x").arg(&fake).status().unwrap();
    assert!(chmod.success());
    let env = [("DUET_DEADLINE_S", "8"), ("DUET_RESERVE_S", "1"), ("DUET_MIN_STEP_S", "2")];
    let (code, text, took) = script(&out, &work, &fake, &env);
    assert_eq!(code, 1, "a step failed: {text}");
    assert!(took < Duration::from_secs(8 + 5 + 3), "the deadline holds: {took:?}\n{text}");
    let r = rows(&out);
    let status: Vec<(&str, &str)> = r.iter().map(|r| (r[0].as_str(), r[4].as_str())).collect();
    assert_eq!(
        status,
        [
            ("facts", "ok"),
            ("libs", "ok"),
            ("info", "ok"),
            ("check", "failed"),
            ("replay-static", "timeout"),
            ("calibrate", "skipped"),
            ("replay-duet", "skipped")
        ],
        "{text}"
    );
    let cap: u32 = r[4][1].parse().unwrap();
    assert!(cap <= 7, "replay-static capped at the time left, not its own 120 s: {cap}");
    // What the cut-short replay wrote was packed.
    let list = Command::new("tar").arg("tzf").arg(out.join("first-contact.tar.gz")).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    for f in ["replay-static/steps.partial.csv", "replay-static.log", "check.log", "steps.csv"] {
        assert!(list.contains(f), "{f} not packed: {list}");
    }
    let _ = std::fs::remove_file(fake);
}
