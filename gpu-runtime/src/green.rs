//! Green contexts: SM partitions of one GPU, each with its own non-blocking stream.
//!
//! Flow (CUDA 12.4+ driver API): `cuDeviceGetDevResource(SM)` -> `cuDevSmResourceSplitByCount` (one group plus
//! the remainder) -> `cuDevResourceGenerateDesc` per side -> `cuGreenCtxCreate(CU_GREEN_CTX_DEFAULT_STREAM)` ->
//! `cuGreenCtxStreamCreate(CU_STREAM_NON_BLOCKING)`; `cuCtxFromGreenCtx` gives the context that kernel
//! functions are resolved in. The SM counts are read back from the split, not assumed. All pairs are created at
//! start-up ([`Partitions::create`]); switching partition at an iteration boundary is picking another stream.

use cudarc::driver::sys::{self, CUcontext, CUgreenCtx, CUstream};

use crate::driver::{Gpu, primary_stream, sm_resource};
use crate::error::{GpuError, check};
use crate::menu::{GroupRole, Menu};

/// One SM partition: a green context (or the whole GPU's primary context), its context handle and its stream.
pub struct Partition {
    /// SMs in the partition, as the driver reported them.
    pub sms: u32,
    /// The green context; null for the whole GPU.
    green: CUgreenCtx,
    /// The context kernels are resolved in (`cuCtxFromGreenCtx`, or the primary context).
    pub ctx: CUcontext,
    /// The partition's non-blocking stream.
    pub stream: CUstream,
}

impl Partition {
    /// The whole GPU: the primary context and a new non-blocking stream on it.
    pub fn whole(gpu: &Gpu) -> Result<Partition, GpuError> {
        gpu.bind()?;
        Ok(Partition {
            sms: gpu.facts.sm.total,
            green: std::ptr::null_mut(),
            ctx: gpu.primary,
            stream: primary_stream()?,
        })
    }

    /// Makes this partition's context current on the calling thread (before resolving kernels or calling
    /// libraries that use the current context).
    pub fn bind(&self) -> Result<(), GpuError> {
        // SAFETY: the context lives as long as `self`.
        check("cuCtxSetCurrent", unsafe { sys::cuCtxSetCurrent(self.ctx) })
    }

    /// Waits for the partition's stream.
    pub fn synchronize(&self) -> Result<(), GpuError> {
        // SAFETY: live stream.
        check("cuStreamSynchronize", unsafe { sys::cuStreamSynchronize(self.stream) })
    }

    fn from_resource(gpu: &Gpu, mut res: sys::CUdevResource) -> Result<Partition, GpuError> {
        // SAFETY: `res` is an SM resource produced by the split; out-pointers are valid. Every status is checked
        // and the green context is destroyed by `Drop` once `Partition` exists.
        unsafe {
            let sms = res.__bindgen_anon_1.sm.smCount;
            let mut desc = std::ptr::null_mut();
            check("cuDevResourceGenerateDesc", sys::cuDevResourceGenerateDesc(&mut desc, &mut res, 1))?;
            let mut green = std::ptr::null_mut();
            check(
                "cuGreenCtxCreate",
                sys::cuGreenCtxCreate(
                    &mut green,
                    desc,
                    gpu.dev,
                    sys::CUgreenCtxCreate_flags::CU_GREEN_CTX_DEFAULT_STREAM as u32,
                ),
            )?;
            let mut part = Partition { sms, green, ctx: std::ptr::null_mut(), stream: std::ptr::null_mut() };
            check("cuCtxFromGreenCtx", sys::cuCtxFromGreenCtx(&mut part.ctx, green))?;
            check(
                "cuGreenCtxStreamCreate",
                sys::cuGreenCtxStreamCreate(
                    &mut part.stream,
                    green,
                    sys::CUstream_flags::CU_STREAM_NON_BLOCKING as u32,
                    0,
                ),
            )?;
            Ok(part)
        }
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        // SAFETY: handles were created by this partition and are destroyed once; null ones are skipped.
        unsafe {
            if !self.stream.is_null() {
                sys::cuStreamDestroy_v2(self.stream);
            }
            if !self.green.is_null() {
                sys::cuGreenCtxDestroy(self.green);
            }
        }
    }
}

/// One group size of the menu: the group's partition and the remainder's.
pub struct GreenPair {
    /// The carved-out group.
    pub group: Partition,
    /// Everything else.
    pub remainder: Partition,
}

impl GreenPair {
    /// Splits `requested` SMs off the whole GPU and makes a green context and stream for each side.
    pub fn create(gpu: &Gpu, requested: u32) -> Result<GreenPair, GpuError> {
        let full = sm_resource(gpu.dev)?;
        // SAFETY: zeroed resources are valid out-parameters; one group is asked for.
        let (group, remainder) = unsafe {
            let mut groups: [sys::CUdevResource; 1] = std::mem::zeroed();
            let mut remainder: sys::CUdevResource = std::mem::zeroed();
            let mut n = 1u32;
            check(
                "cuDevSmResourceSplitByCount",
                sys::cuDevSmResourceSplitByCount(groups.as_mut_ptr(), &mut n, &full, &mut remainder, 0, requested),
            )?;
            if n != 1 {
                return Err(GpuError::Unsupported(format!("split of {requested} SMs produced {n} groups")));
            }
            (groups[0], remainder)
        };
        let pair = GreenPair {
            group: Partition::from_resource(gpu, group)?,
            remainder: Partition::from_resource(gpu, remainder)?,
        };
        gpu.bind()?;
        Ok(pair)
    }

    /// (decode partition, prefill partition) for a side choice.
    pub fn sides(&self, decode_on: GroupRole) -> (&Partition, &Partition) {
        match decode_on {
            GroupRole::Decode => (&self.group, &self.remainder),
            GroupRole::Prefill => (&self.remainder, &self.group),
        }
    }
}

/// Every partition the runtime will use: the whole GPU and one green pair per menu entry, with the menu's SM
/// counts replaced by what the driver gave. Splits the driver refused are left out of the menu and listed.
pub struct Partitions {
    /// The whole GPU.
    pub whole: Partition,
    /// The menu, with actual SM counts.
    pub menu: Menu,
    /// One pair per `menu.groups` entry, same order.
    pub pairs: Vec<GreenPair>,
    /// Group sizes the driver refused, with its error.
    pub skipped: Vec<SkippedSplit>,
}

/// A group size whose green contexts could not be created.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SkippedSplit {
    /// SMs asked for.
    pub requested: u32,
    /// Why.
    pub error: String,
}

/// Creates one pair per menu entry with `create` (which returns the pair and the group and remainder SM counts
/// the driver gave); an entry whose creation fails, or whose counts do not add up, is skipped and listed instead
/// of failing the rest. An error only when no entry is left.
pub fn create_pairs<P>(
    menu: Menu,
    mut create: impl FnMut(u32) -> Result<(P, u32, u32), GpuError>,
) -> Result<(Menu, Vec<P>, Vec<SkippedSplit>), GpuError> {
    let mut menu = menu;
    let mut pairs = Vec::with_capacity(menu.groups.len());
    let (mut skipped, mut refused) = (Vec::new(), Vec::new());
    for i in 0..menu.groups.len() {
        let requested = menu.groups[i].requested;
        let made = create(requested).and_then(|(p, g, r)| menu.clone().with_actual(i, g, r).map(|m| (p, m)));
        match made {
            Ok((p, m)) => {
                menu = m;
                pairs.push(p);
            }
            Err(e) => {
                skipped.push(SkippedSplit { requested, error: e.to_string() });
                refused.push(i);
            }
        }
    }
    let menu = menu.without(&refused);
    if menu.groups.is_empty() {
        return Err(GpuError::Unsupported(format!(
            "the driver refused every green-context split: {}",
            skipped.iter().map(|s| format!("{} SMs: {}", s.requested, s.error)).collect::<Vec<_>>().join("; ")
        )));
    }
    Ok((menu, pairs, skipped))
}

impl Partitions {
    /// Creates the whole-GPU partition and every pair of `menu` the driver accepts (see [`create_pairs`]).
    pub fn create(gpu: &Gpu, menu: Menu) -> Result<Partitions, GpuError> {
        let whole = Partition::whole(gpu)?;
        let (menu, pairs, skipped) = create_pairs(menu, |n| {
            let pair = GreenPair::create(gpu, n);
            gpu.bind()?;
            let pair = pair?;
            let (g, r) = (pair.group.sms, pair.remainder.sms);
            Ok((pair, g, r))
        })?;
        Ok(Partitions { whole, menu, pairs, skipped })
    }

    /// The partition of `sms` SMs among the whole GPU, the groups and the remainders.
    pub fn find(&self, sms: u32) -> Option<&Partition> {
        if self.whole.sms == sms {
            return Some(&self.whole);
        }
        self.pairs.iter().flat_map(|p| [&p.group, &p.remainder]).find(|p| p.sms == sms)
    }

    /// (decode, prefill) partitions for `decode_sms` decode SMs, or an error when the menu has no such split.
    pub fn split(&self, decode_sms: u32) -> Result<(&Partition, &Partition), GpuError> {
        let c = self.menu.lookup(decode_sms).ok_or_else(|| {
            GpuError::Invalid(format!("no green split gives decode {decode_sms} SMs; menu: {:?}", self.menu.splits()))
        })?;
        Ok(self.pairs[c.index].sides(c.decode_on))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::menu::SmInfo;

    #[test]
    fn a_refused_split_is_skipped_and_reported_not_fatal() {
        let menu = Menu::new(SmInfo::H100_SXM).unwrap();
        let (menu, pairs, skipped) = create_pairs(menu, |requested| {
            let n = SmInfo::H100_SXM.group_for(requested).unwrap();
            if n == 24 {
                Err(GpuError::Driver {
                    call: "cuGreenCtxCreate",
                    code: "CUDA_ERROR_INVALID_RESOURCE_CONFIGURATION".into(),
                })
            } else if n == 64 {
                Ok((n, 64, 70)) // counts that do not add up to 132
            } else {
                Ok((n, n, 132 - n))
            }
        })
        .unwrap();
        assert_eq!(pairs.len(), 14);
        assert_eq!(menu.groups.len(), 14);
        let refused: Vec<u32> = skipped.iter().map(|s| SmInfo::H100_SXM.group_for(s.requested).unwrap()).collect();
        assert_eq!(refused, vec![24, 64]);
        assert!(skipped[0].error.contains("cuGreenCtxCreate"), "{skipped:?}");
        assert!(menu.lookup(24).is_none() && menu.lookup(108).is_none());
        // Pairs and menu entries stay in step.
        for (p, g) in pairs.iter().zip(&menu.groups) {
            assert_eq!(*p, g.group_sms);
        }
        let none = create_pairs(Menu::new(SmInfo::H100_SXM).unwrap(), |_| -> Result<(u32, u32, u32), GpuError> {
            Err(GpuError::Unsupported("no".into()))
        });
        assert!(none.unwrap_err().to_string().contains("refused every green-context split"));
    }
}
