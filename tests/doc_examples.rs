//! Every runnable `duet` command in README.md and docs/*.md starts and validates its inputs once the public data
//! is fetched (issue 22). The data comes from `scripts/fetch-data.sh` with a local mirror (`../shared`; the test
//! skips with a printed reason when it is absent) into a scratch folder laid out like the project root (its own
//! `data/`, links to everything else), and each example runs there, cut short: `--num-requests 50` for runs,
//! `--runs 1` for benchmarks, `--list` for sweep and capacity files. Lines with placeholders (`FILE`, `[options]`,
//! `...`, shell syntax) are usage lines, not examples; `duet report` needs results and `duet-gpu` a GPU, so both
//! are left out (their own tests cover them).

use std::path::PathBuf;
use std::process::Command;

mod common;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `duet` arguments of every example line in the fenced blocks of `text` (continuations joined, comments cut).
fn examples(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let mut in_block = false;
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if !in_block {
            continue;
        }
        let (start, mut cmd) = match pending.take() {
            Some((s, c)) => (s, format!("{c} {}", line.trim())),
            None => (i + 1, line.trim().to_string()),
        };
        if let Some(c) = cmd.strip_suffix('\\') {
            pending = Some((start, c.trim_end().to_string()));
            continue;
        }
        if let Some(k) = cmd.find(" #") {
            cmd.truncate(k);
        }
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let rest = match words.as_slice() {
            ["duet", rest @ ..] | ["./target/release/duet", rest @ ..] | ["target/release/duet", rest @ ..] => rest,
            ["cargo", "run", "--release", "--", rest @ ..] => rest,
            _ => continue,
        };
        let placeholder = |w: &&str| {
            w.contains(['[', ']', '$', '|', '<', '>', '{'])
                || w.contains("...")
                || w.split('.')
                    .next()
                    .is_some_and(|stem| stem.len() > 1 && stem.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        };
        if rest.is_empty() || rest.iter().any(placeholder) {
            continue;
        }
        out.push((start, rest.iter().map(|s| s.to_string()).collect()));
    }
    out
}

/// The example cut short, or `None` when it is left out.
fn shortened(mut args: Vec<String>) -> Option<Vec<String>> {
    let has = |a: &[String], f: &str| a.iter().any(|x| x == f);
    let set = |a: &mut Vec<String>, flag: &str, value: &str| match a.iter().position(|x| x == flag) {
        Some(i) if i + 1 < a.len() => a[i + 1] = value.into(),
        _ => a.extend([flag.to_string(), value.to_string()]),
    };
    match args[0].as_str() {
        "report" => return None,
        "sim" | "replay" if !has(&args, "--synthetic") => set(&mut args, "--num-requests", "50"),
        "bench" if args.get(1).is_some_and(|a| a == "serve") => {}
        "bench" => {
            if !has(&args, "--synthetic") {
                set(&mut args, "--num-requests", "50");
            }
            set(&mut args, "--runs", "1");
        }
        "trace" if args.get(1).is_some_and(|a| a == "bench") => set(&mut args, "--runs", "1"),
        "sweep" | "capacity" => args.push("--list".into()),
        _ => {}
    }
    Some(args)
}

#[test]
fn every_example_in_the_docs_starts_after_the_fetch() {
    let Some(shared) = common::shared() else { return };
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("SKIPPED: no curl on this machine (scripts/fetch-data.sh uses it)");
        return;
    }
    let work = common::tmp("doc-examples", "root");
    let data = work.join("data");
    let fetch = Command::new("bash")
        .arg(root().join("scripts/fetch-data.sh"))
        .env("DUET_DATA", &data)
        .env("DUET_DATA_MIRROR", format!("file://{}", shared.canonicalize().unwrap().display()))
        .output()
        .unwrap();
    assert!(fetch.status.success(), "fetch: {}", String::from_utf8_lossy(&fetch.stderr));
    // The project root as the examples see it: the fetched data, everything else linked.
    for entry in std::fs::read_dir(root()).unwrap() {
        let name = entry.unwrap().file_name();
        if !["data", "target", "results", ".git"].contains(&name.to_str().unwrap_or("")) {
            std::os::unix::fs::symlink(root().join(&name), work.join(&name)).unwrap();
        }
    }
    let mut docs: Vec<PathBuf> = vec![root().join("README.md")];
    let mut more: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    more.sort();
    docs.extend(more);
    let (mut ran, mut failed) = (0, Vec::new());
    for doc in &docs {
        let name = doc.strip_prefix(root()).unwrap_or(doc).display().to_string();
        for (line, args) in examples(&std::fs::read_to_string(doc).unwrap()) {
            let Some(args) = shortened(args) else { continue };
            let o = Command::new(env!("CARGO_BIN_EXE_duet")).args(&args).current_dir(&work).output().unwrap();
            ran += 1;
            if !o.status.success() {
                failed.push(format!(
                    "{name}:{line}: duet {}\n  {}",
                    args.join(" "),
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
            }
        }
    }
    println!("{ran} examples ran");
    assert!(ran >= 20, "only {ran} examples found");
    assert!(failed.is_empty(), "{} of {ran} examples failed:\n{}", failed.len(), failed.join("\n"));
}

#[test]
fn examples_are_found_and_usage_lines_are_not() {
    let text = "```sh\nduet sim --trace data/t.csv --rate 8   # comment\nduet sim [options]\nduet sweep FILE.toml\n\
                ./target/release/duet bench --trace data/t.csv \\\n    --runs 5\n```\nduet sim outside a block\n";
    let found = examples(text);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0], (2, vec!["sim".into(), "--trace".into(), "data/t.csv".into(), "--rate".into(), "8".into()]));
    assert_eq!(found[1].0, 5);
    assert_eq!(
        shortened(found[1].1.clone()).unwrap(),
        ["bench", "--trace", "data/t.csv", "--runs", "1", "--num-requests", "50"]
    );
    assert_eq!(shortened(vec!["report".into(), "results/x".into()]), None);
    assert_eq!(shortened(vec!["capacity".into(), "f.toml".into()]).unwrap(), ["capacity", "f.toml", "--list"]);
}
