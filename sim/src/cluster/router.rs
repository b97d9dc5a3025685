//! The global router: which instance a request goes to.
//!
//! - `round-robin`: instances in turn.
//! - `least-outstanding`: fewest unfinished requests (queued, running, or waiting for KV), as vLLM's production
//!   router and SGLang's router do for load balancing.
//! - `least-kv`: most free KV blocks (evictable prefix-cache blocks count as free).
//!
//! Ties go to the lowest instance index, so routing is deterministic.

use crate::error::ConfigError;

/// A routing rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Router {
    /// Instances in turn.
    RoundRobin,
    /// Fewest unfinished requests.
    #[default]
    LeastOutstanding,
    /// Most free KV blocks.
    LeastKv,
}

/// What the router knows about one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Requests routed there and not finished.
    pub outstanding: usize,
    /// KV blocks free (or evictable).
    pub free_blocks: u32,
}

impl Router {
    /// Parses `round-robin`, `least-outstanding` or `least-kv`.
    pub fn parse(s: &str) -> Result<Router, ConfigError> {
        match s.to_ascii_lowercase().as_str() {
            "round-robin" | "rr" => Ok(Router::RoundRobin),
            "least-outstanding" => Ok(Router::LeastOutstanding),
            "least-kv" => Ok(Router::LeastKv),
            _ => Err(ConfigError::Invalid(format!(
                "unknown router {s:?}: expected round-robin, least-outstanding or least-kv"
            ))),
        }
    }

    /// Name in reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            Router::RoundRobin => "round-robin",
            Router::LeastOutstanding => "least-outstanding",
            Router::LeastKv => "least-kv",
        }
    }

    /// Index into `loads` of the instance to use; `turn` counts the requests routed so far over this group.
    pub fn pick(&self, turn: u64, loads: &[Load]) -> usize {
        assert!(!loads.is_empty(), "routing needs at least one instance");
        let best = |key: &dyn Fn(&Load) -> (u64, u64)| {
            (0..loads.len()).min_by_key(|&i| (key(&loads[i]), i)).expect("non-empty")
        };
        match self {
            Router::RoundRobin => (turn % loads.len() as u64) as usize,
            Router::LeastOutstanding => best(&|l| (l.outstanding as u64, u64::from(u32::MAX - l.free_blocks))),
            Router::LeastKv => best(&|l| (u64::from(u32::MAX - l.free_blocks), l.outstanding as u64)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(outstanding: usize, free_blocks: u32) -> Load {
        Load { outstanding, free_blocks }
    }

    #[test]
    fn each_rule_picks_as_documented() {
        let loads = [l(3, 10), l(1, 5), l(1, 50), l(0, 1)];
        assert_eq!(Router::RoundRobin.pick(5, &loads), 1);
        assert_eq!(Router::LeastOutstanding.pick(0, &loads), 3);
        assert_eq!(Router::LeastKv.pick(0, &loads), 2);
        // Ties: lowest index.
        assert_eq!(Router::LeastOutstanding.pick(0, &[l(1, 5), l(1, 5)]), 0);
        assert!(Router::parse("random").is_err());
        assert_eq!(Router::parse("least-kv").unwrap(), Router::LeastKv);
    }
}
