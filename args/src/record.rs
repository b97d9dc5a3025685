//! Settings recorded with a run on a device, and read back by `duet validate`.
//!
//! A replay writes `replay.json` with the exact [`SimArgs`] it ran under (`sim_args`, after the GPU was taken from
//! the device and the KV cache sized from its free memory) and the settings they resolve to (`settings`: GPU,
//! profile, SMs, KV blocks, budgets, policy options, overheads, SLOs), so `duet validate --replay DIR`
//! re-simulates from what ran, not from flags typed again. [`merge`] lays the options a user does type over the
//! recorded ones (to try another profile, say) and names each one it changed.

use std::path::Path;

use anyhow::{Context, Result, bail};
use duet_sim::SimConfig;
use duet_sim::kv::KvCapacity;
use serde_json::{Value, json};

use crate::sim_args::SimArgs;

/// The resolved settings of `cfg` (with `kv` its KV capacity), for humans and for checking a re-simulation.
pub fn settings(cfg: &SimConfig, kv: &KvCapacity) -> Value {
    json!({
        "model": cfg.model.name,
        "gpu": cfg.gpu.name,
        "num_sms": cfg.num_sms,
        "granularity": cfg.granularity.to_string(),
        "profile": cfg.curves_name,
        "policy_config": format!("{:?}", cfg.policy),
        "token_budget": cfg.policy.token_budget(),
        "kv_blocks": kv.total_blocks,
        "kv_block_tokens": kv.block_size,
        "kv_bytes_per_block": kv.bytes_per_block,
        "gpu_memory_utilization": cfg.kv.gpu_memory_utilization,
        "cost": format!("{:?}", cfg.cost),
        "contention": format!("{:?}", cfg.contention),
        "partition_switch_ns": cfg.partition_switch_ns,
        "prefix_cache": cfg.prefix_cache,
        "slo": { "ttft_ms": cfg.slo.ttft_ms, "tbt_ms": cfg.slo.tbt_ms, "tpot_ms": cfg.slo.tpot_ms },
        "seed": cfg.seed,
    })
}

/// `{"sim_args": a, "settings": settings(cfg, kv)}`, the part of `replay.json` that [`recorded`] reads back.
pub fn record(a: &SimArgs, cfg: &SimConfig, kv: &KvCapacity) -> Value {
    json!({ "sim_args": a, "settings": settings(cfg, kv) })
}

/// The `SimArgs` recorded in `replay_json` (the text of the file at `path`), or `None` for a replay written before
/// settings were recorded.
pub fn recorded(replay_json: &str, path: &Path) -> Result<Option<(SimArgs, Value)>> {
    let v: Value = serde_json::from_str(replay_json).with_context(|| format!("{} is not JSON", path.display()))?;
    let Some(args) = v.get("sim_args") else { return Ok(None) };
    let a: SimArgs = serde_json::from_value(args.clone())
        .with_context(|| format!("{}: field sim_args does not hold duet sim options", path.display()))?;
    Ok(Some((a, v.get("settings").cloned().unwrap_or(Value::Null))))
}

/// The options `duet sim` takes when none is typed.
pub fn defaults() -> SimArgs {
    use clap::{Args, FromArgMatches};
    let cmd = SimArgs::augment_args(clap::Command::new("defaults").no_binary_name(true));
    let m = cmd.try_get_matches_from(Vec::<String>::new()).expect("every option has a default or is optional");
    SimArgs::from_arg_matches(&m).expect("defaults parse")
}

/// The value of option `id` (a field name, e.g. `profile` or `rate`) in a serialized [`SimArgs`]: workload
/// options sit one level down (`workload.rate`); ids are unique across both levels. `None` for an unknown id.
pub fn option_mut<'a>(args: &'a mut Value, id: &str) -> Option<&'a mut Value> {
    if args.get(id).is_some() {
        return args.get_mut(id);
    }
    args.get_mut("workload")?.get_mut(id)
}

/// Ids of the options given on the command line in `m` (not defaults), e.g. `profile`, `rate`.
pub fn typed_ids(m: &clap::ArgMatches) -> Vec<String> {
    m.ids()
        .filter(|id| m.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine))
        .map(|id| id.as_str().to_string())
        .collect()
}

/// The recorded options with every option named in `explicit` (typed on the command line; ids as
/// [`typed_ids`] gives them) taken from `typed` instead; returns the merged options and the ids of the options
/// that changed.
pub fn merge(recorded: &SimArgs, typed: &SimArgs, explicit: &[String]) -> Result<(SimArgs, Vec<String>)> {
    let mut base = serde_json::to_value(recorded)?;
    let mut t = serde_json::to_value(typed)?;
    let mut changed = Vec::new();
    for id in explicit {
        let Some(v) = option_mut(&mut t, id).cloned() else { continue };
        let b = option_mut(&mut base, id).expect("both are SimArgs");
        if *b != v {
            *b = v;
            changed.push(id.clone());
        }
    }
    let merged: SimArgs = serde_json::from_value(base).context("merging typed options over the recorded ones")?;
    Ok((merged, changed))
}

/// Errors when `now` (settings of the re-simulation) differs from `then` (the recorded ones) in a field that no
/// typed option explains; `changed` are the options typed over the recording.
pub fn check_same(then: &Value, now: &Value, changed: &[String]) -> Result<()> {
    if !changed.is_empty() || then.is_null() {
        return Ok(());
    }
    if let (Value::Object(a), Value::Object(b)) = (then, now) {
        for (k, v) in a {
            if b.get(k) != Some(v) {
                bail!(
                    "re-simulating from the recorded options gives {k} = {} but the device run recorded {v}",
                    b.get(k).unwrap_or(&Value::Null)
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn parse(args: &[&str]) -> SimArgs {
        parse_typed(args).0
    }

    fn parse_typed(args: &[&str]) -> (SimArgs, Vec<String>) {
        use clap::{CommandFactory, FromArgMatches};
        let m = Cli::command().try_get_matches_from(std::iter::once("x").chain(args.iter().copied())).unwrap();
        (Cli::from_arg_matches(&m).unwrap().sim, typed_ids(&m))
    }

    #[test]
    fn recorded_args_round_trip_and_typed_options_override_them() {
        let ran = parse(&[
            "--gpu",
            "h200",
            "--policy",
            "duet",
            "--tbt-target-ms",
            "40",
            "--window",
            "20s",
            "--kv-blocks",
            "900",
        ]);
        let cfg = crate::config(&ran).unwrap();
        let kv = KvCapacity::compute(&cfg.model, &cfg.gpu, &cfg.kv).unwrap();
        let text = record(&ran, &cfg, &kv).to_string();
        let (back, settings) = recorded(&text, Path::new("replay.json")).unwrap().unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), serde_json::to_value(&ran).unwrap());
        assert_eq!(settings["gpu"], "h200");
        assert_eq!(settings["kv_blocks"], 900);
        assert_eq!(settings["token_budget"], cfg.policy.token_budget());

        // Nothing typed: the recording as it was.
        let (none, ids) = parse_typed(&[]);
        assert!(ids.is_empty(), "{ids:?}");
        let (same, changed) = merge(&back, &none, &ids).unwrap();
        assert!(changed.is_empty(), "{changed:?}");
        assert_eq!(same.gpu.as_deref(), Some("h200"));
        check_same(&settings, &super::settings(&crate::config(&same).unwrap(), &kv), &changed).unwrap();

        // A typed profile and rate override; everything else stays recorded.
        let (t, ids) = parse_typed(&["--profile", "datasheet", "--rate", "3"]);
        let (m, mut changed) = merge(&back, &t, &ids).unwrap();
        changed.sort();
        assert_eq!(changed, vec!["profile".to_string(), "rate".to_string()]);
        assert_eq!(m.profile.as_deref(), Some("datasheet"));
        assert_eq!(m.workload.rate, Some(3.0));
        assert_eq!(m.tbt_target_ms, Some(40.0));
        assert_eq!(m.workload.window.as_deref(), Some("20s"));
        // A typed value equal to the default still counts: typing --policy chunked validates as chunked.
        let (t, ids) = parse_typed(&["--policy", "chunked", "--gpu", "h200"]);
        let (m, changed) = merge(&back, &t, &ids).unwrap();
        assert_eq!(m.policy.as_deref(), Some("chunked"));
        assert_eq!(changed, vec!["policy".to_string()], "--gpu h200 equals the recording: no change");
    }

    #[test]
    fn a_re_simulation_that_differs_from_the_recording_is_refused() {
        let then = json!({"kv_blocks": 900, "gpu": "h200"});
        let now = json!({"kv_blocks": 1000, "gpu": "h200"});
        let e = check_same(&then, &now, &[]).unwrap_err().to_string();
        assert!(e.contains("kv_blocks = 1000") && e.contains("recorded 900"), "{e}");
        check_same(&then, &now, &["kv_blocks".into()]).unwrap();
    }

    #[test]
    fn old_replays_without_settings_and_bad_files_are_told_apart() {
        assert!(recorded(r#"{"device": {}}"#, Path::new("r.json")).unwrap().is_none());
        let e = recorded("{", Path::new("r.json")).unwrap_err().to_string();
        assert!(e.contains("r.json"), "{e}");
        let e = format!("{:#}", recorded(r#"{"sim_args": {"model": 3}}"#, Path::new("r.json")).unwrap_err());
        assert!(e.contains("sim_args"), "{e}");
    }
}
