//! The link that moves a request's KV cache from a prefill instance to a decode instance.
//!
//! A transfer of `B` bytes takes `latency + B / bandwidth`; transfers leaving one prefill instance share its
//! link first-come first-served (the link is busy for `B / bandwidth` per transfer; latency overlaps). With
//! tensor parallelism each GPU of the instance sends its own KV shard over its own link, so `B` is the bytes of
//! one GPU's shard.
//!
//! Defaults (nominal per-direction bandwidths from vendor datasheets; latencies are assumptions):
//! - `nvlink`: 450 GB/s, 10 us. H100 SXM NVLink 4 is 900 GB/s bidirectional (NVIDIA H100 datasheet).
//! - `pcie`: 64 GB/s, 10 us. PCIe 5.0 x16 is 128 GB/s bidirectional (NVIDIA H100 datasheet).
//! - `network`: 50 GB/s, 20 us. One 400 Gb/s NDR InfiniBand port per GPU (NVIDIA ConnectX-7, as in DGX H100).
//!
//! Achieved rates are lower than nominal (NCCL and NIXL reach roughly 70-90%); pass `BANDWIDTH_GBPS:LATENCY_US`
//! for a measured link.

use std::fmt;

use crate::error::ConfigError;

/// A KV-transfer link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KvLink {
    /// Bytes per second in one direction.
    pub bandwidth: f64,
    /// Fixed latency of one transfer, ns.
    pub latency_ns: u64,
    /// Which preset it is (`None`: custom).
    pub preset: Option<&'static str>,
}

impl KvLink {
    /// NVLink 4 between two H100 SXM GPUs of one node.
    pub const NVLINK: KvLink = KvLink { bandwidth: 450e9, latency_ns: 10_000, preset: Some("nvlink") };
    /// PCIe 5.0 x16.
    pub const PCIE: KvLink = KvLink { bandwidth: 64e9, latency_ns: 10_000, preset: Some("pcie") };
    /// 400 Gb/s InfiniBand between nodes.
    pub const NETWORK: KvLink = KvLink { bandwidth: 50e9, latency_ns: 20_000, preset: Some("network") };

    /// Parses `nvlink`, `pcie`, `network` or `BANDWIDTH_GBPS:LATENCY_US`.
    pub fn parse(s: &str) -> Result<KvLink, ConfigError> {
        let bad = |why: &str| ConfigError::Invalid(format!("--kv-link {s:?}: {why}"));
        match s.to_ascii_lowercase().as_str() {
            "nvlink" => return Ok(Self::NVLINK),
            "pcie" => return Ok(Self::PCIE),
            "network" => return Ok(Self::NETWORK),
            _ => {}
        }
        let (bw, lat) = s
            .split_once(':')
            .ok_or_else(|| bad("expected nvlink, pcie, network or BANDWIDTH_GBPS:LATENCY_US (e.g. 50:10)"))?;
        let gbps: f64 = bw.trim().parse().map_err(|_| bad("bandwidth is not a number"))?;
        let us: f64 = lat.trim().parse().map_err(|_| bad("latency is not a number"))?;
        if !(gbps.is_finite() && gbps > 0.0) {
            return Err(bad("the link bandwidth must be > 0 GB/s"));
        }
        if !(us.is_finite() && us >= 0.0) {
            return Err(bad("the latency must be >= 0 us"));
        }
        Ok(KvLink { bandwidth: gbps * 1e9, latency_ns: (us * 1e3).round() as u64, preset: None })
    }

    /// Time to move `bytes`: `latency + bytes / bandwidth`, ns.
    pub fn transfer_ns(&self, bytes: u64) -> u64 {
        self.latency_ns + self.busy_ns(bytes)
    }

    /// Time the link is occupied by `bytes`: `bytes / bandwidth`, ns (rounded up).
    pub fn busy_ns(&self, bytes: u64) -> u64 {
        (bytes as f64 / self.bandwidth * 1e9).ceil() as u64
    }
}

impl fmt::Display for KvLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.latency_ns as f64 / 1e3;
        match self.preset {
            Some(p) => write!(f, "{p} ({:.0} GB/s, {us} us)", self.bandwidth / 1e9),
            None => write!(f, "{} GB/s, {us} us", self.bandwidth / 1e9),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_custom_and_errors() {
        assert_eq!(KvLink::parse("NVLink").unwrap(), KvLink::NVLINK);
        let l = KvLink::parse("25:5").unwrap();
        assert_eq!((l.bandwidth, l.latency_ns), (25e9, 5_000));
        // 1 GB at 25 GB/s = 40 ms, plus 5 us.
        assert_eq!(l.transfer_ns(1_000_000_000), 40_005_000);
        let e = KvLink::parse("0:10").unwrap_err().to_string();
        assert!(e.contains("bandwidth must be > 0"), "{e}");
        assert!(KvLink::parse("fast").is_err());
        assert!(KvLink::parse("10:-1").is_err());
    }
}
