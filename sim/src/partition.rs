//! SM partitions: at which granularity a GPU's SMs can be divided, and which splits are legal.
//!
//! - `tpc`: multiples of one TPC (2 SMs) on either side, as DuetServe's per-stream TPC masks allow.
//! - `green`: green contexts on compute capability 9.0: one side is a multiple of 8 SMs (at least 8), the other
//!   side gets the remainder (on a 132-SM H100: 8..=128 plus the remaining 124..=4).
//! - `green8`: `green` without partitions under 8 SMs (no 4-SM remainder on 132 SMs). On an H200, cuBLASLt's
//!   first-choice GEMMs failed on the 4-SM remainder (measurements/h200/2026-12-04-validate); this menu is what a
//!   runtime without a cluster-free fallback can use.
//! - `sm`: any SM count (for studies; no hardware mechanism gives this).
//!
//! The whole GPU is always a legal partition.

use std::fmt;
use std::str::FromStr;

use crate::error::ConfigError;

/// Partition granularity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// Any SM count.
    Sm,
    /// Multiples of 2 SMs (one TPC).
    Tpc,
    /// Green contexts on CC 9.0: a multiple of 8 SMs on one side, the remainder on the other.
    Green,
    /// `Green` without partitions under 8 SMs.
    Green8,
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sm => "sm",
            Self::Tpc => "tpc",
            Self::Green => "green",
            Self::Green8 => "green8",
        })
    }
}

impl FromStr for Granularity {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s {
            "sm" => Ok(Self::Sm),
            "tpc" => Ok(Self::Tpc),
            "green" => Ok(Self::Green),
            "green8" => Ok(Self::Green8),
            _ => {
                Err(ConfigError::Invalid(format!("unknown partition granularity {s:?}; known: tpc, green, green8, sm")))
            }
        }
    }
}

/// Green-context group size on compute capability 9.0.
pub const GREEN_STEP: u32 = 8;

impl Granularity {
    /// Whether a partition of `sms` SMs on a GPU of `total` SMs is legal.
    pub fn allows(&self, sms: u32, total: u32) -> bool {
        if sms == 0 || sms > total {
            return false;
        }
        if sms == total {
            return true;
        }
        match self {
            Self::Sm => true,
            Self::Tpc => sms.is_multiple_of(2),
            Self::Green => {
                sms.is_multiple_of(GREEN_STEP) || (total - sms).is_multiple_of(GREEN_STEP) && total - sms >= GREEN_STEP
            }
            Self::Green8 => sms >= GREEN_STEP && Self::Green.allows(sms, total),
        }
    }

    /// All legal (decode SMs, prefill SMs) splits of `total` SMs with both sides non-empty, decode ascending.
    /// With `green`, the decode side is the multiple-of-8 group or the remainder, whichever makes the pair legal.
    pub fn splits(&self, total: u32) -> Vec<(u32, u32)> {
        (1..total).filter(|&d| self.allows(d, total) && self.allows(total - d, total)).map(|d| (d, total - d)).collect()
    }

    /// Checks that this granularity can split a GPU of `total` SMs at all.
    pub fn validate(&self, total: u32) -> Result<(), ConfigError> {
        if self.splits(total).is_empty() {
            return Err(ConfigError::Invalid(format!(
                "granularity {self} cannot split a GPU of {total} SMs into two partitions"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h100_splits() {
        let tpc = Granularity::Tpc.splits(132);
        assert_eq!(tpc.len(), 65);
        assert_eq!((tpc[0], tpc[64]), ((2, 130), (130, 2)));
        let green = Granularity::Green.splits(132);
        // Decode 8, 16, ..., 128 with the remainder, and decode = remainder 4, 12, ..., 124 of a group of 8..128.
        assert!(green.contains(&(8, 124)) && green.contains(&(4, 128)) && green.contains(&(128, 4)));
        assert!(green.iter().all(|&(d, p)| d % 8 == 0 || p % 8 == 0));
        assert!(!Granularity::Green.allows(10, 132));
        // green8: the same menu less the 4-SM remainder on either side.
        let green8 = Granularity::Green8.splits(132);
        let expect: Vec<(u32, u32)> = green.iter().copied().filter(|&(d, p)| d >= 8 && p >= 8).collect();
        assert_eq!(green8, expect);
        assert_eq!(green8.len(), green.len() - 2);
        assert!(!Granularity::Green8.allows(4, 132) && Granularity::Green8.allows(132, 132));
        assert_eq!("green8".parse::<Granularity>().unwrap(), Granularity::Green8);
        assert!(Granularity::Green.allows(132, 132));
        assert!("mig".parse::<Granularity>().is_err());
        assert!(Granularity::Green.validate(7).is_err());
    }
}
