//! Request-length distributions for synthetic workloads.
//!
//! Per-dimension distributions ([`LengthDist`], parsed from `fixed:512`, `uniform:128,2048`,
//! `lognormal:mean=1000,cv=1.5`, `zipf:max=4096,s=1.1`) draw input and output lengths independently; an
//! empirical source ([`Lengths::Empirical`]) draws (input, output) pairs together from a trace, keeping their
//! correlation. Every draw is rounded to an integer >= 1.

use std::fmt;
use std::str::FromStr;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::Rng;
use rand_distr::{Distribution, LogNormal, Zipf};

use crate::error::TraceError;

/// One length distribution, in tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LengthDist {
    /// Always this length.
    Fixed(u32),
    /// Uniform integers in `lo..=hi`.
    Uniform {
        /// Smallest length.
        lo: u32,
        /// Largest length.
        hi: u32,
    },
    /// Lognormal with this mean and coefficient of variation: `sigma^2 = ln(1 + cv^2)`,
    /// `mu = ln(mean) - sigma^2 / 2`.
    LogNormal {
        /// Mean length.
        mean: f64,
        /// Coefficient of variation.
        cv: f64,
    },
    /// Zipf over `1..=max` with exponent `s` (short lengths most frequent).
    Zipf {
        /// Largest length.
        max: u32,
        /// Exponent (> 0).
        s: f64,
    },
}

impl fmt::Display for LengthDist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fixed(v) => write!(f, "fixed:{v}"),
            Self::Uniform { lo, hi } => write!(f, "uniform:{lo},{hi}"),
            Self::LogNormal { mean, cv } => write!(f, "lognormal:mean={mean},cv={cv}"),
            Self::Zipf { max, s } => write!(f, "zipf:max={max},s={s}"),
        }
    }
}

/// Reads `key=value` (or bare positional values) of a spec argument in order.
fn params<'a>(arg: &'a str, keys: &[&str]) -> Option<Vec<&'a str>> {
    let parts: Vec<&str> = arg.split(',').map(str::trim).collect();
    if parts.len() != keys.len() {
        return None;
    }
    parts.iter().zip(keys).map(|(p, k)| Some(p.strip_prefix(&format!("{k}=")).unwrap_or(p))).collect()
}

impl FromStr for LengthDist {
    type Err = TraceError;

    fn from_str(s: &str) -> Result<Self, TraceError> {
        let bad = |why: &str| {
            TraceError::InvalidParameter(format!(
                "length distribution {s:?}: {why}; expected fixed:N, uniform:LO,HI, lognormal:mean=M,cv=C or zipf:max=N,s=S"
            ))
        };
        let (kind, arg) = s.split_once(':').unwrap_or(("fixed", s));
        let int =
            |v: &str| v.parse::<u32>().ok().filter(|&x| x >= 1).ok_or_else(|| bad("lengths must be integers >= 1"));
        let real = |v: &str| {
            v.parse::<f64>().ok().filter(|x| x.is_finite() && *x > 0.0).ok_or_else(|| bad("parameters must be > 0"))
        };
        match kind.trim() {
            "fixed" => Ok(Self::Fixed(int(arg.trim())?)),
            "uniform" => {
                let p = params(arg, &["lo", "hi"]).ok_or_else(|| bad("uniform takes LO,HI"))?;
                let (lo, hi) = (int(p[0])?, int(p[1])?);
                if lo > hi {
                    return Err(bad("LO must be <= HI"));
                }
                Ok(Self::Uniform { lo, hi })
            }
            "lognormal" => {
                let p = params(arg, &["mean", "cv"]).ok_or_else(|| bad("lognormal takes mean=M,cv=C"))?;
                Ok(Self::LogNormal { mean: real(p[0])?, cv: real(p[1])? })
            }
            "zipf" => {
                let p = params(arg, &["max", "s"]).ok_or_else(|| bad("zipf takes max=N,s=S"))?;
                Ok(Self::Zipf { max: int(p[0])?, s: real(p[1])? })
            }
            _ => Err(bad("unknown kind")),
        }
    }
}

impl LengthDist {
    /// Checks the parameters (the parser does too; this covers values built directly).
    pub fn validate(&self) -> Result<(), TraceError> {
        let ok = match *self {
            Self::Fixed(v) => v >= 1,
            Self::Uniform { lo, hi } => lo >= 1 && lo <= hi,
            Self::LogNormal { mean, cv } => mean.is_finite() && mean > 0.0 && cv.is_finite() && cv > 0.0,
            Self::Zipf { max, s } => max >= 1 && s.is_finite() && s > 0.0,
        };
        if ok { Ok(()) } else { Err(TraceError::InvalidParameter(format!("invalid length distribution {self}"))) }
    }

    /// One draw, >= 1.
    pub fn sample(&self, rng: &mut ChaCha8Rng) -> u32 {
        let v = match *self {
            Self::Fixed(v) => return v,
            Self::Uniform { lo, hi } => return lo + uniform_below(rng, u64::from(hi - lo) + 1) as u32,
            Self::LogNormal { mean, cv } => {
                let sigma2 = (1.0 + cv * cv).ln();
                LogNormal::new(mean.ln() - sigma2 / 2.0, sigma2.sqrt()).expect("checked parameters").sample(rng)
            }
            Self::Zipf { max, s } => Zipf::new(f64::from(max), s).expect("checked parameters").sample(rng),
        };
        v.round().clamp(1.0, f64::from(u32::MAX)) as u32
    }
}

/// A uniform integer in `0..n` (multiply-shift; bias below 2^-32 for the ranges used here).
pub(crate) fn uniform_below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    ((u128::from(rng.next_u64()) * u128::from(n)) >> 64) as u64
}

/// Where a generator takes (input, output) lengths from.
#[derive(Debug, Clone, PartialEq)]
pub enum Lengths {
    /// Input and output drawn independently.
    Independent {
        /// Prompt lengths.
        input: LengthDist,
        /// Output lengths.
        output: LengthDist,
    },
    /// Pairs drawn uniformly with replacement from a trace (the empirical joint distribution).
    Empirical(Vec<(u32, u32)>),
    /// Pairs taken in order from a trace, cycling if more requests are generated than it has rows.
    Sequential(Vec<(u32, u32)>),
}

impl Lengths {
    /// Fixed input and output lengths.
    pub fn fixed(input: u32, output: u32) -> Self {
        Self::Independent { input: LengthDist::Fixed(input), output: LengthDist::Fixed(output) }
    }

    /// Checks that the source can produce lengths.
    pub fn validate(&self) -> Result<(), TraceError> {
        match self {
            Self::Empirical(v) | Self::Sequential(v) if v.is_empty() => {
                Err(TraceError::InvalidParameter("cannot take lengths from an empty source".into()))
            }
            Self::Independent { input: LengthDist::Fixed(0), .. }
            | Self::Independent { output: LengthDist::Fixed(0), .. } => {
                Err(TraceError::InvalidParameter("fixed lengths must be >= 1 token".into()))
            }
            _ => Ok(()),
        }
    }

    /// The `i`-th (input, output) pair.
    pub fn draw(&self, i: usize, rng: &mut ChaCha8Rng) -> (u32, u32) {
        match self {
            Self::Independent { input, output } => (input.sample(rng), output.sample(rng)),
            Self::Empirical(v) => v[uniform_below(rng, v.len() as u64) as usize],
            Self::Sequential(v) => v[i % v.len()],
        }
    }

    /// Short description for workload sources.
    pub fn describe(&self) -> String {
        match self {
            Self::Independent { input, output } => format!("in={input},out={output}"),
            Self::Empirical(v) => format!("empirical({} pairs)", v.len()),
            Self::Sequential(v) => format!("sequential({} pairs)", v.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn parse_and_display_round_trip() {
        for s in ["fixed:512", "uniform:128,2048", "lognormal:mean=1000,cv=1.5", "zipf:max=4096,s=1.1"] {
            assert_eq!(s.parse::<LengthDist>().unwrap().to_string(), s);
        }
        assert_eq!("64".parse::<LengthDist>().unwrap(), LengthDist::Fixed(64));
        assert_eq!("uniform:lo=1,hi=3".parse::<LengthDist>().unwrap(), LengthDist::Uniform { lo: 1, hi: 3 });
        for bad in ["fixed:0", "uniform:5,2", "lognormal:mean=-1,cv=1", "zipf:max=10", "gauss:1"] {
            assert!(bad.parse::<LengthDist>().is_err(), "{bad}");
        }
    }

    #[test]
    fn draws_respect_their_distribution() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let u = LengthDist::Uniform { lo: 10, hi: 12 };
        let draws: Vec<u32> = (0..3000).map(|_| u.sample(&mut rng)).collect();
        assert!(draws.iter().all(|v| (10..=12).contains(v)));
        assert!((10..=12).all(|v| draws.contains(&v)));
        let ln = LengthDist::LogNormal { mean: 1000.0, cv: 1.0 };
        let n = 50_000;
        let mean = (0..n).map(|_| f64::from(ln.sample(&mut rng))).sum::<f64>() / n as f64;
        // Standard error of the mean is 1000 / sqrt(50k) = 4.5; 3% is over 6 sigma.
        assert!((mean - 1000.0).abs() < 30.0, "{mean}");
        let z = LengthDist::Zipf { max: 100, s: 1.2 };
        let zs: Vec<u32> = (0..5000).map(|_| z.sample(&mut rng)).collect();
        assert!(zs.iter().all(|v| (1..=100).contains(v)));
        assert!(zs.iter().filter(|&&v| v == 1).count() > zs.iter().filter(|&&v| v == 2).count());
    }
}
