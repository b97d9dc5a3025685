//! Policies by name: the [`REGISTRY`] of every selectable policy, each an [`Entry`] (its name and how its
//! [`Settings`] come from the command-line [`PolicyOptions`]), and [`PolicyConfig`], the settings a run holds.
//!
//! Adding a policy is one file (the policy, its settings type implementing [`Settings`], and its `ENTRY`, all
//! naming it by one `NAME` constant) plus one line in [`REGISTRY`].

use std::sync::Arc;

use super::{Policy, PolicyContext};
use crate::error::ConfigError;

/// Options shared by the policies, as given on the command line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyOptions {
    /// Token budget per batch.
    pub token_budget: Option<u32>,
    /// TBT target, ms.
    pub tbt_target_ms: Option<f64>,
    /// Largest look-ahead depth.
    pub max_lookahead: Option<u32>,
    /// Static split as (prefill SMs, decode SMs).
    pub split: Option<(u32, u32)>,
    /// Decode-step guard of duet and muxwise (predicted step x (1 + guard) must meet the target).
    pub guard: Option<f64>,
    /// Most requests holding KV at once (vLLM `max_num_seqs`) for the policies that cap it.
    pub max_num_seqs: Option<u32>,
    /// Mechanisms of `adaptive` switched off (ablation); other policies refuse a non-empty list.
    pub without: Vec<String>,
}

impl PolicyOptions {
    /// The token budget, or `default`.
    pub fn budget(&self, default: u32) -> u32 {
        self.token_budget.unwrap_or(default)
    }

    /// The sequence limit, or `default`.
    pub fn seqs(&self, default: usize) -> usize {
        self.max_num_seqs.map_or(default, |n| n as usize)
    }

    /// The TBT target in ns, or `default_ns`.
    pub fn tbt_ns(&self, default_ns: u64) -> u64 {
        self.tbt_target_ms.map_or(default_ns, |t| (t * 1e6).round() as u64)
    }
}

/// A policy's settings: its name, its token budget, and the policy they build.
pub trait Settings: std::fmt::Debug + Send + Sync {
    /// The policy's name (as on the command line and in reports).
    fn name(&self) -> &'static str;
    /// Tokens per batch (its meaning is the policy's).
    fn token_budget(&self) -> u32;
    /// Builds the policy, checking the settings against the GPU.
    fn build(&self, ctx: &PolicyContext) -> Result<Box<dyn Policy>, ConfigError>;
}

/// One selectable policy.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// Its name.
    pub name: &'static str,
    /// The command-line options its settings read (`--token-budget`, ...): given to any other policy, an option is
    /// reported ([`PolicyConfig::ignored_options`]), or refused where it can only be a mistake (`--split`).
    pub options: &'static [&'static str],
    /// Its settings from the options (defaults where an option is not given).
    pub settings: fn(&PolicyOptions) -> Result<Arc<dyn Settings>, ConfigError>,
}

/// Every policy, in the order `duet --help` lists them.
pub const REGISTRY: &[Entry] = &[
    super::chunked::ENTRY,
    super::prefill_first::ENTRY,
    super::duet::ENTRY,
    super::split::STATIC_SPLIT_ENTRY,
    super::split::MUXWISE_ENTRY,
    super::vllm::ENTRY,
    super::adaptive::ENTRY,
];

/// A run's policy settings (Debug prints the settings themselves, e.g. `DuetConfig { .. }`).
#[derive(Clone)]
pub struct PolicyConfig(Arc<dyn Settings>);

impl std::fmt::Debug for PolicyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl PartialEq for PolicyConfig {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name() && format!("{:?}", self.0) == format!("{:?}", other.0)
    }
}

impl PolicyConfig {
    /// Settings given directly.
    pub fn new(s: impl Settings + 'static) -> PolicyConfig {
        PolicyConfig(Arc::new(s))
    }

    /// Names of every registered policy.
    pub fn names() -> Vec<&'static str> {
        REGISTRY.iter().map(|e| e.name).collect()
    }

    /// The policy called `name` with default settings overridden by `o`.
    pub fn by_name(name: &str, o: &PolicyOptions) -> Result<PolicyConfig, ConfigError> {
        if o.token_budget == Some(0) {
            return Err(ConfigError::Invalid("token budget must be >= 1".into()));
        }
        if let Some(t) = o.tbt_target_ms
            && !(t.is_finite() && t > 0.0)
        {
            return Err(ConfigError::Invalid(format!("TBT target must be a positive number of ms, got {t}")));
        }
        if o.max_lookahead == Some(0) {
            return Err(ConfigError::Invalid("max look-ahead must be >= 1".into()));
        }
        if !o.without.is_empty() && name != super::adaptive::NAME {
            return Err(ConfigError::Invalid(format!(
                "switching off mechanisms ({}) applies only to adaptive, not {name}",
                o.without.join(", ")
            )));
        }
        if let Some(g) = o.guard
            && !(g.is_finite() && g >= 0.0)
        {
            return Err(ConfigError::Invalid(format!("--decode-guard must be a fraction >= 0, got {g}")));
        }
        let entry = Self::entry(name)?;
        if o.split.is_some() && !entry.options.contains(&"--split") {
            return Err(ConfigError::Invalid(format!(
                "--split applies to static-split only; {name} chooses its own partitions (or none)"
            )));
        }
        Ok(PolicyConfig((entry.settings)(o)?))
    }

    fn entry(name: &str) -> Result<&'static Entry, ConfigError> {
        REGISTRY.iter().find(|e| e.name == name).ok_or_else(|| {
            ConfigError::Invalid(format!("unknown policy {name:?}; known policies: {}", Self::names().join(", ")))
        })
    }

    /// The options given in `o` that policy `name` does not read (they cannot affect its run), as on the command
    /// line; empty for an unknown policy (which [`PolicyConfig::by_name`] refuses).
    pub fn ignored_options(name: &str, o: &PolicyOptions) -> Vec<&'static str> {
        let Ok(entry) = Self::entry(name) else { return Vec::new() };
        let given = [
            ("--token-budget", o.token_budget.is_some()),
            ("--max-num-seqs", o.max_num_seqs.is_some()),
            ("--tbt-target-ms", o.tbt_target_ms.is_some()),
            ("--max-lookahead", o.max_lookahead.is_some()),
            ("--split", o.split.is_some()),
            ("--decode-guard", o.guard.is_some()),
            ("--adaptive-without", !o.without.is_empty()),
        ];
        given.into_iter().filter(|&(flag, set)| set && !entry.options.contains(&flag)).map(|(flag, _)| flag).collect()
    }

    /// The policy's name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// The token budget of this configuration.
    pub fn token_budget(&self) -> u32 {
        self.0.token_budget()
    }

    /// Builds the policy, checking its settings against the GPU.
    pub fn build(&self, ctx: &PolicyContext) -> Result<Box<dyn Policy>, ConfigError> {
        self.0.build(ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::DuetConfig;

    #[test]
    fn options_a_policy_does_not_read_are_named_and_split_is_refused() {
        let o = PolicyOptions { tbt_target_ms: Some(50.0), guard: Some(0.1), ..PolicyOptions::default() };
        assert_eq!(PolicyConfig::ignored_options("chunked", &o), ["--tbt-target-ms", "--decode-guard"]);
        assert!(PolicyConfig::ignored_options("duet", &o).is_empty());
        assert!(PolicyConfig::ignored_options("muxwise", &o).is_empty());
        let split = PolicyOptions { split: Some((100, 32)), ..PolicyOptions::default() };
        for name in ["chunked", "duet", "muxwise", "adaptive", "vllm", "prefill-first"] {
            let e = PolicyConfig::by_name(name, &split).unwrap_err().to_string();
            assert!(e.contains("--split applies to static-split only"), "{name}: {e}");
        }
        assert!(PolicyConfig::by_name("static-split", &split).is_ok());
        // Every flag an entry lists is one `ignored_options` knows.
        let all = [
            "--token-budget",
            "--max-num-seqs",
            "--tbt-target-ms",
            "--max-lookahead",
            "--split",
            "--decode-guard",
            "--adaptive-without",
        ];
        for e in REGISTRY {
            assert!(e.options.iter().all(|f| all.contains(f)), "{}: {:?}", e.name, e.options);
        }
    }

    #[test]
    fn a_negative_or_nan_guard_is_refused_for_every_policy() {
        for g in [-1.0, f64::NAN, f64::INFINITY] {
            let o = PolicyOptions { guard: Some(g), ..PolicyOptions::default() };
            let e = PolicyConfig::by_name("chunked", &o).unwrap_err().to_string();
            assert!(e.contains("--decode-guard must be a fraction >= 0"), "{e}");
        }
    }

    #[test]
    fn every_registered_policy_builds_by_its_name_and_unknown_names_list_them() {
        let split = PolicyOptions { split: Some((100, 32)), ..PolicyOptions::default() };
        for e in REGISTRY {
            // static-split needs its split; the others refuse one.
            let o = if e.options.contains(&"--split") { split.clone() } else { PolicyOptions::default() };
            let c = PolicyConfig::by_name(e.name, &o).unwrap();
            assert_eq!(c.name(), e.name);
        }
        let o = PolicyOptions::default();
        let e = PolicyConfig::by_name("fifo", &o).unwrap_err().to_string();
        assert!(e.contains("chunked, prefill-first, duet, static-split, muxwise"), "{e}");
        let c = PolicyConfig::by_name("duet", &PolicyOptions { tbt_target_ms: Some(40.0), ..o.clone() }).unwrap();
        assert_eq!(c, PolicyConfig::new(DuetConfig { tbt_target_ns: 40_000_000, ..DuetConfig::default() }));
        assert_ne!(c, PolicyConfig::new(DuetConfig::default()));
    }

    #[test]
    fn switching_off_mechanisms_is_for_adaptive_only() {
        let o = PolicyOptions { without: vec!["hrrn".into()], ..PolicyOptions::default() };
        assert!(PolicyConfig::by_name("adaptive", &o).is_ok());
        let e = PolicyConfig::by_name("chunked", &o).unwrap_err().to_string();
        assert!(e.contains("applies only to adaptive, not chunked"), "{e}");
        let bad = PolicyOptions { without: vec!["hrn".into()], ..o };
        let e = PolicyConfig::by_name("adaptive", &bad).unwrap_err().to_string();
        assert!(e.contains("unknown mechanism \"hrn\""), "{e}");
    }
}
