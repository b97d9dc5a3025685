//! Arrival processes for synthetic workloads. Each draws inter-arrival gaps at a given mean rate; the first
//! request arrives at 0.
//!
//! - `poisson`: exponential gaps (coefficient of variation 1).
//! - `gamma:cv=C`: Gamma gaps with shape `k = 1 / C^2` and scale `1 / (rate k)`, so the mean gap is `1 / rate`
//!   and the CV is `C` (`vllm bench serve --burstiness B` is this with `C = 1 / sqrt(B)`).
//! - `constant`: gaps of exactly `1 / rate`.
//! - `burst`: every request at time 0 (a closed burst; the rate is ignored).

use std::fmt;
use std::str::FromStr;

use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, Gamma};

use crate::error::TraceError;

/// The shape of an arrival process; its rate is given separately.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ArrivalProcess {
    /// Exponential gaps.
    Poisson,
    /// Gamma gaps with this coefficient of variation.
    Gamma {
        /// Coefficient of variation of the gaps (> 0).
        cv: f64,
    },
    /// Equal gaps.
    Constant,
    /// All at once.
    Burst,
}

impl fmt::Display for ArrivalProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Poisson => write!(f, "poisson"),
            Self::Gamma { cv } => write!(f, "gamma:cv={cv}"),
            Self::Constant => write!(f, "constant"),
            Self::Burst => write!(f, "burst"),
        }
    }
}

impl FromStr for ArrivalProcess {
    type Err = TraceError;

    /// `poisson`, `gamma:cv=2` (or `gamma:2`), `constant`, `burst`.
    fn from_str(s: &str) -> Result<Self, TraceError> {
        let bad = || {
            TraceError::InvalidParameter(format!(
                "arrival process {s:?}: expected poisson, gamma:cv=C, constant or burst"
            ))
        };
        let (kind, arg) = s.split_once(':').unwrap_or((s, ""));
        match (kind.trim(), arg.trim()) {
            ("poisson", "") => Ok(Self::Poisson),
            ("constant", "") => Ok(Self::Constant),
            ("burst", "") => Ok(Self::Burst),
            ("gamma", a) => {
                let v = a.strip_prefix("cv=").unwrap_or(a);
                let cv: f64 = v.parse().map_err(|_| bad())?;
                if !(cv.is_finite() && cv > 0.0) {
                    return Err(TraceError::InvalidParameter(format!("gamma arrivals need cv > 0, got {v}")));
                }
                Ok(Self::Gamma { cv })
            }
            _ => Err(bad()),
        }
    }
}

impl ArrivalProcess {
    /// `n` arrival times in ns at mean rate `rate_per_s`, the first at 0.
    pub fn times_ns(&self, n: usize, rate_per_s: f64, rng: &mut ChaCha8Rng) -> Result<Vec<u64>, TraceError> {
        if !(rate_per_s.is_finite() && rate_per_s > 0.0) && *self != Self::Burst {
            return Err(TraceError::InvalidParameter(format!("rate must be > 0 req/s, got {rate_per_s}")));
        }
        let mut out = Vec::with_capacity(n);
        match *self {
            Self::Burst => out.resize(n, 0),
            Self::Constant => out.extend((0..n).map(|i| (i as f64 * 1e9 / rate_per_s).round() as u64)),
            Self::Poisson => {
                let d = Exp::new(rate_per_s).expect("rate checked");
                cumulate(&mut out, n, || d.sample(rng));
            }
            Self::Gamma { cv } => {
                let k = 1.0 / (cv * cv);
                let d = Gamma::new(k, 1.0 / (rate_per_s * k))
                    .map_err(|e| TraceError::InvalidParameter(format!("gamma arrivals with cv={cv}: {e}")))?;
                cumulate(&mut out, n, || d.sample(rng));
            }
        }
        Ok(out)
    }
}

/// First arrival at 0, then running sums of `gap()` seconds, rounded to ns.
fn cumulate(out: &mut Vec<u64>, n: usize, mut gap: impl FnMut() -> f64) {
    let mut t = 0.0f64;
    for i in 0..n {
        if i > 0 {
            t += gap();
        }
        out.push((t * 1e9).round() as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn parse_and_display() {
        assert_eq!("poisson".parse::<ArrivalProcess>().unwrap(), ArrivalProcess::Poisson);
        assert_eq!("gamma:cv=2".parse::<ArrivalProcess>().unwrap(), ArrivalProcess::Gamma { cv: 2.0 });
        assert_eq!("gamma:0.5".parse::<ArrivalProcess>().unwrap().to_string(), "gamma:cv=0.5");
        assert!("gamma:cv=0".parse::<ArrivalProcess>().is_err());
        assert!("weibull".parse::<ArrivalProcess>().is_err());
    }

    #[test]
    fn constant_and_burst_are_exact() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert_eq!(
            ArrivalProcess::Constant.times_ns(4, 4.0, &mut rng).unwrap(),
            vec![0, 250_000_000, 500_000_000, 750_000_000]
        );
        assert_eq!(ArrivalProcess::Burst.times_ns(3, 0.0, &mut rng).unwrap(), vec![0, 0, 0]);
        assert!(ArrivalProcess::Poisson.times_ns(3, 0.0, &mut rng).is_err());
    }
}
