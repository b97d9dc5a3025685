//! Which bundled GPU the device is: name, SM count and memory from the driver, clocks from `nvidia-smi`, matched to
//! a bundled GPU (`duet gpus`) so that a replay on an H200 is simulated and sized as an H200, never silently as the
//! default H100. An explicit `--gpu` that contradicts the device is refused ([`resolve_gpu`]).
//!
//! Everything here is plain data and string matching, tested with fake driver and `nvidia-smi` answers.

use duet_sim::GpuSpec;
use serde::Serialize;

use crate::error::GpuError;

/// What identifies a device: the driver's facts and, when `nvidia-smi` answers, its clocks and driver version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceIdentity {
    /// Marketing name from the driver, e.g. `NVIDIA H200`.
    pub name: String,
    /// SMs.
    pub sms: u32,
    /// Device memory in bytes.
    pub memory_bytes: u64,
    /// Compute capability (major, minor).
    pub compute_capability: (i32, i32),
    /// Clocks and driver version from `nvidia-smi` (`None` when it is missing or said nothing usable).
    pub smi: Option<SmiFacts>,
}

/// One device's line of `nvidia-smi --query-gpu=` [`SMI_QUERY`] `--format=csv,noheader,nounits`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SmiFacts {
    /// Name as nvidia-smi prints it.
    pub name: String,
    /// Driver version, e.g. `580.95.05`.
    pub driver_version: String,
    /// Total memory, MiB.
    pub memory_mib: Option<u64>,
    /// Current SM clock, MHz.
    pub sm_clock_mhz: Option<u32>,
    /// Maximum SM clock, MHz.
    pub max_sm_clock_mhz: Option<u32>,
    /// Current memory clock, MHz.
    pub mem_clock_mhz: Option<u32>,
    /// Power limit, W.
    pub power_limit_w: Option<f64>,
}

/// The fields asked of `nvidia-smi`, in the order [`parse_smi`] reads them.
pub const SMI_QUERY: &str = "name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem,power.limit";

/// Parses `nvidia-smi`'s answer to [`SMI_QUERY`] (one line per device, `[N/A]` or `[Not Supported]` for values it
/// lacks); an error names the line and field it could not read.
pub fn parse_smi(text: &str) -> Result<Vec<SmiFacts>, GpuError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if f.len() != 7 {
            return Err(GpuError::Invalid(format!(
                "nvidia-smi line {}: {} fields, expected 7 ({SMI_QUERY}): {line:?}",
                i + 1,
                f.len()
            )));
        }
        fn num<T: std::str::FromStr>(v: &str, field: &str, line: usize) -> Result<Option<T>, GpuError> {
            if v.starts_with('[') || v.is_empty() {
                return Ok(None);
            }
            v.parse().map(Some).map_err(|_| GpuError::Invalid(format!("nvidia-smi line {line}: {field} {v:?}")))
        }
        out.push(SmiFacts {
            name: f[0].to_string(),
            driver_version: f[1].to_string(),
            memory_mib: num(f[2], "memory.total", i + 1)?,
            sm_clock_mhz: num(f[3], "clocks.sm", i + 1)?,
            max_sm_clock_mhz: num(f[4], "clocks.max.sm", i + 1)?,
            mem_clock_mhz: num(f[5], "clocks.mem", i + 1)?,
            power_limit_w: num(f[6], "power.limit", i + 1)?,
        });
    }
    Ok(out)
}

/// Asks `nvidia-smi` about device `ordinal`; `None` when it is missing, fails or answers something unreadable
/// (clocks are recorded when known, never required).
pub fn query_smi(ordinal: u32) -> Option<SmiFacts> {
    let out = std::process::Command::new("nvidia-smi")
        .args([&format!("--query-gpu={SMI_QUERY}"), "--format=csv,noheader,nounits", "-i", &ordinal.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_smi(&String::from_utf8_lossy(&out.stdout)).ok()?.into_iter().next()
}

/// The bundled GPU (`duet gpus`) a device of this name, SM count and memory is, if any: an H200 (132 SMs), an
/// H100 SXM (132 SMs; not the PCIe card's 114 or the NVL's 94 GB), an A100 80 GB (108 SMs).
pub fn bundled_gpu(name: &str, sms: u32, memory_bytes: u64) -> Option<&'static str> {
    let n = name.to_ascii_lowercase();
    let gib = memory_bytes as f64 / (1u64 << 30) as f64;
    if n.contains("h200") && sms == 132 {
        Some("h200")
    } else if n.contains("h100") && !n.contains("pcie") && !n.contains("nvl") && sms == 132 && gib < 90.0 {
        Some("h100-sxm")
    } else if n.contains("a100") && sms == 108 && gib > 60.0 {
        Some("a100-80gb")
    } else {
        None
    }
}

/// The GPU a run on `dev` is simulated and sized as: the bundled GPU the device is; `explicit` (`--gpu`) must name
/// that same GPU. A device no bundled GPU matches needs an explicit `--gpu` with its SM count.
pub fn resolve_gpu(dev: &DeviceIdentity, explicit: Option<&str>) -> Result<String, GpuError> {
    let detected = bundled_gpu(&dev.name, dev.sms, dev.memory_bytes);
    let spec = |g: &str| GpuSpec::by_name(g).map_err(|e| GpuError::Invalid(e.to_string()));
    match (detected, explicit) {
        (Some(d), None) => Ok(d.to_string()),
        (Some(d), Some(e)) => {
            let given = spec(e)?;
            if given.name == d {
                Ok(d.to_string())
            } else {
                Err(GpuError::Invalid(format!(
                    "--gpu {e} contradicts the device: {} ({} SMs, {:.0} GiB) is {d}; drop --gpu or pass --gpu {d}",
                    dev.name,
                    dev.sms,
                    dev.memory_bytes as f64 / (1u64 << 30) as f64
                )))
            }
        }
        (None, Some(e)) => {
            let given = spec(e)?;
            if given.num_sms != dev.sms {
                return Err(GpuError::Invalid(format!(
                    "--gpu {e} has {} SMs but the device ({}) has {}",
                    given.num_sms, dev.name, dev.sms
                )));
            }
            Ok(given.name)
        }
        (None, None) => Err(GpuError::Unsupported(format!(
            "{} ({} SMs, {:.0} GiB) is none of the bundled GPUs ({}); pass --gpu with the one to simulate it as",
            dev.name,
            dev.sms,
            dev.memory_bytes as f64 / (1u64 << 30) as f64,
            GpuSpec::NAMES.join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn dev(name: &str, sms: u32, gib: f64) -> DeviceIdentity {
        DeviceIdentity {
            name: name.into(),
            sms,
            memory_bytes: (gib * GIB as f64) as u64,
            compute_capability: (9, 0),
            smi: None,
        }
    }

    #[test]
    fn driver_names_map_to_bundled_gpus() {
        // Names and memory as the driver reports them (cuDeviceGetName, cuDeviceTotalMem).
        assert_eq!(bundled_gpu("NVIDIA H200", 132, 150_754 << 20), Some("h200"));
        assert_eq!(bundled_gpu("NVIDIA H100 80GB HBM3", 132, 81_559 << 20), Some("h100-sxm"));
        assert_eq!(bundled_gpu("NVIDIA H100 PCIe", 114, 81_559 << 20), None);
        assert_eq!(bundled_gpu("NVIDIA H100 NVL", 132, 95_830 << 20), None);
        assert_eq!(bundled_gpu("NVIDIA A100-SXM4-80GB", 108, 81_920 << 20), Some("a100-80gb"));
        assert_eq!(bundled_gpu("NVIDIA A100-SXM4-40GB", 108, 40_960 << 20), None);
        assert_eq!(bundled_gpu("NVIDIA GeForce RTX 4090", 128, 24 * GIB), None);
    }

    #[test]
    fn an_h200_is_simulated_as_an_h200_and_a_contradicting_gpu_is_refused() {
        let h200 = dev("NVIDIA H200", 132, 140.4);
        assert_eq!(resolve_gpu(&h200, None).unwrap(), "h200");
        assert_eq!(resolve_gpu(&h200, Some("H200")).unwrap(), "h200");
        // Same 132 SMs, so an SM-count check alone would not notice.
        let e = resolve_gpu(&h200, Some("h100-sxm")).unwrap_err().to_string();
        assert!(e.contains("--gpu h100-sxm contradicts the device") && e.contains("pass --gpu h200"), "{e}");
        let h100 = dev("NVIDIA H100 80GB HBM3", 132, 79.6);
        assert_eq!(resolve_gpu(&h100, None).unwrap(), "h100-sxm");
        assert_eq!(resolve_gpu(&h100, Some("h100")).unwrap(), "h100-sxm", "aliases name the same GPU");
        assert!(resolve_gpu(&h100, Some("h200")).is_err());
        assert!(resolve_gpu(&h100, Some("b200")).unwrap_err().to_string().contains("unknown GPU"));
    }

    #[test]
    fn an_unknown_device_needs_an_explicit_gpu_of_its_sm_count() {
        let nvl = dev("NVIDIA H100 NVL", 132, 93.6);
        assert!(resolve_gpu(&nvl, None).unwrap_err().to_string().contains("pass --gpu"));
        assert_eq!(resolve_gpu(&nvl, Some("h100-sxm")).unwrap(), "h100-sxm");
        let pcie = dev("NVIDIA H100 PCIe", 114, 79.6);
        let e = resolve_gpu(&pcie, Some("h100-sxm")).unwrap_err().to_string();
        assert!(e.contains("132 SMs") && e.contains("has 114"), "{e}");
    }

    #[test]
    fn nvidia_smi_answers_parse_with_missing_values() {
        let text = "NVIDIA H200, 580.95.05, 143771, 1980, 1980, 3201, 700.00\n\
                    NVIDIA H100 80GB HBM3, 580.95.05, 81559, [N/A], 1980, [Not Supported], [N/A]\n";
        let f = parse_smi(text).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].name, "NVIDIA H200");
        assert_eq!(f[0].driver_version, "580.95.05");
        assert_eq!((f[0].memory_mib, f[0].sm_clock_mhz, f[0].mem_clock_mhz), (Some(143_771), Some(1980), Some(3201)));
        assert_eq!(f[0].power_limit_w, Some(700.0));
        assert_eq!((f[1].sm_clock_mhz, f[1].max_sm_clock_mhz, f[1].mem_clock_mhz), (None, Some(1980), None));
        let e = parse_smi("NVIDIA H200, 580, lots, 1, 2, 3, 4").unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("memory.total") && e.contains("lots"), "{e}");
        assert!(parse_smi("NVIDIA H200, 580").unwrap_err().to_string().contains("2 fields"));
        assert!(parse_smi("\n").unwrap().is_empty());
    }
}
