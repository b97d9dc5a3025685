//! The menu of prefill/decode SM splits, computed from what the device reports, before any context exists.
//!
//! `cuDevSmResourceSplitByCount` carves one group of `n` SMs out of the GPU and hands back the rest as a
//! remainder. On compute capability 9.0 a group has at least `minSmPartitionSize` SMs (8) and grows in steps of
//! `smCoscheduledAlignment` (8); the remainder can be any size (4 on a 132-SM H100 when the group is 128). So one
//! group size gives two splits: decode on the group and prefill on the remainder, or the other way round. The
//! runtime creates one (group, remainder) pair of green contexts per group size at start-up and maps every split
//! the simulator's `green` granularity allows onto one of them ([`Menu::lookup`]).
//!
//! Everything here is plain arithmetic, tested without a GPU; `green.rs` makes the contexts and records the SM
//! counts the driver actually gave ([`Menu::with_actual`]).

use serde::Serialize;

use crate::error::GpuError;

/// What the device reports about its SMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SmInfo {
    /// SMs on the device.
    pub total: u32,
    /// Smallest group a split can produce (`minSmPartitionSize`).
    pub min_partition: u32,
    /// Groups are multiples of this (`smCoscheduledAlignment`).
    pub alignment: u32,
}

impl SmInfo {
    /// An H100 SXM as CUDA 13 reports it on compute capability 9.0.
    pub const H100_SXM: SmInfo = SmInfo { total: 132, min_partition: 8, alignment: 8 };

    /// The SM facts to plan with on a device of compute capability `cc` that reported `reported`: on 9.x
    /// (Hopper) groups are multiples of 8 SMs of at least 8, whatever alignment the driver reports (a smaller one
    /// would offer splits that `cuDevSmResourceSplitByCount` rounds or refuses); elsewhere what was reported,
    /// with an alignment of at least 1.
    pub fn for_device(reported: SmInfo, cc: (i32, i32)) -> SmInfo {
        if cc.0 == 9 {
            SmInfo { total: reported.total, min_partition: reported.min_partition.max(8), alignment: 8 }
        } else {
            SmInfo { alignment: reported.alignment.max(1), ..reported }
        }
    }

    /// The group size the driver gives for a request of `requested` SMs: at least the minimum, rounded up to the
    /// alignment. `None` when that leaves no SM for the remainder.
    pub fn group_for(&self, requested: u32) -> Option<u32> {
        let align = self.alignment.max(1);
        let g = requested.max(self.min_partition).div_ceil(align) * align;
        (g < self.total).then_some(g)
    }
}

/// Which side of a split runs on the carved-out group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupRole {
    /// Decode on the group, prefill on the remainder.
    Decode,
    /// Prefill on the group, decode on the remainder.
    Prefill,
}

/// One group size of the menu, with the SM counts of the group and of the remainder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GroupSplit {
    /// SMs asked for.
    pub requested: u32,
    /// SMs in the group (expected from [`SmInfo::group_for`], then as read back from the driver).
    pub group_sms: u32,
    /// SMs in the remainder.
    pub remainder_sms: u32,
}

/// A split looked up in the menu: which group pair, and which side decode runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Choice {
    /// Index into [`Menu::groups`].
    pub index: usize,
    /// Side decode runs on.
    pub decode_on: GroupRole,
    /// Decode SMs.
    pub decode_sms: u32,
    /// Prefill SMs.
    pub prefill_sms: u32,
}

/// All group sizes the device allows, smallest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Menu {
    /// The device's SM facts.
    pub info: SmInfo,
    /// One entry per group size.
    pub groups: Vec<GroupSplit>,
}

impl Menu {
    /// Every legal group size: `min_partition`, then steps of `alignment`, while at least one SM remains.
    pub fn new(info: SmInfo) -> Result<Menu, GpuError> {
        if info.total == 0 || info.min_partition == 0 {
            return Err(GpuError::Unsupported(format!("device reports no splittable SMs: {info:?}")));
        }
        let mut groups = Vec::new();
        let mut n = info.min_partition;
        while let Some(g) = info.group_for(n) {
            if groups.last().is_none_or(|l: &GroupSplit| l.group_sms < g) {
                groups.push(GroupSplit { requested: n, group_sms: g, remainder_sms: info.total - g });
            }
            n = g + 1;
        }
        if groups.is_empty() {
            return Err(GpuError::Unsupported(format!(
                "a GPU of {} SMs with groups of at least {} cannot be split in two",
                info.total, info.min_partition
            )));
        }
        Ok(Menu { info, groups })
    }

    /// Only the group sizes in `wanted` (each rounded as the driver would); an error for a size the device cannot
    /// give.
    pub fn restricted(info: SmInfo, wanted: &[u32]) -> Result<Menu, GpuError> {
        let full = Menu::new(info)?;
        let mut groups = Vec::new();
        for &w in wanted {
            let g = info.group_for(w).ok_or_else(|| {
                GpuError::Invalid(format!("no group of {w} SMs on a {}-SM GPU leaves a remainder", info.total))
            })?;
            let entry = full.groups.iter().find(|e| e.group_sms == g).copied().expect("group_for is on the menu");
            if !groups.contains(&entry) {
                groups.push(entry);
            }
        }
        groups.sort_by_key(|g| g.group_sms);
        Ok(Menu { info, groups })
    }

    /// The menu with the SM counts the driver read back for group `index`; an error when they do not add up to
    /// the device's SMs or the group is empty.
    pub fn with_actual(mut self, index: usize, group_sms: u32, remainder_sms: u32) -> Result<Menu, GpuError> {
        let total = self.info.total;
        let entry = self.groups.get_mut(index).ok_or_else(|| GpuError::Invalid(format!("no menu entry {index}")))?;
        if group_sms == 0 || group_sms + remainder_sms > total {
            return Err(GpuError::Unsupported(format!(
                "split of {} SMs came back as {group_sms} + {remainder_sms} on a {total}-SM GPU",
                entry.requested
            )));
        }
        entry.group_sms = group_sms;
        entry.remainder_sms = remainder_sms;
        Ok(self)
    }

    /// The menu without the group sizes at `indices` (splits the driver refused).
    pub fn without(mut self, indices: &[usize]) -> Menu {
        let mut i = 0;
        self.groups.retain(|_| {
            i += 1;
            !indices.contains(&(i - 1))
        });
        self
    }

    /// The group pair and side for `decode_sms` decode SMs with the rest for prefill, or `None` when no group
    /// gives exactly that split.
    pub fn lookup(&self, decode_sms: u32) -> Option<Choice> {
        self.groups.iter().enumerate().find_map(|(index, g)| {
            let (decode_on, prefill_sms) = if g.group_sms == decode_sms {
                (GroupRole::Decode, g.remainder_sms)
            } else if g.remainder_sms == decode_sms {
                (GroupRole::Prefill, g.group_sms)
            } else {
                return None;
            };
            Some(Choice { index, decode_on, decode_sms, prefill_sms })
        })
    }

    /// Every (decode SMs, prefill SMs) split the menu offers, decode ascending.
    pub fn splits(&self) -> Vec<(u32, u32)> {
        let mut out: Vec<(u32, u32)> = self
            .groups
            .iter()
            .flat_map(|g| [(g.group_sms, g.remainder_sms), (g.remainder_sms, g.group_sms)])
            .filter(|&(d, p)| d > 0 && p > 0)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// SM counts a microbenchmark sweeps: every group size, every remainder, and the whole GPU; ascending.
    pub fn sm_counts(&self) -> Vec<u32> {
        let mut out: Vec<u32> = self.groups.iter().flat_map(|g| [g.group_sms, g.remainder_sms]).collect();
        out.push(self.info.total);
        out.retain(|&s| s > 0);
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use duet_sim::partition::Granularity;
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn h100_menu_is_the_simulators_green_granularity() {
        let menu = Menu::new(SmInfo::H100_SXM).unwrap();
        let sizes: Vec<u32> = menu.groups.iter().map(|g| g.group_sms).collect();
        assert_eq!(sizes, (1..=16).map(|k| 8 * k).collect::<Vec<_>>());
        assert_eq!(menu.groups.last().unwrap().remainder_sms, 4);
        // The same splits the simulator's `green` granularity allows on 132 SMs, no more, no fewer.
        assert_eq!(menu.splits(), Granularity::Green.splits(132));
        let c = menu.lookup(4).unwrap();
        assert_eq!((c.decode_on, c.decode_sms, c.prefill_sms), (GroupRole::Prefill, 4, 128));
        let c = menu.lookup(32).unwrap();
        assert_eq!((menu.groups[c.index].group_sms, c.decode_on, c.prefill_sms), (32, GroupRole::Decode, 100));
        assert!(menu.lookup(10).is_none());
        assert_eq!(menu.sm_counts().len(), 33);
    }

    #[test]
    fn requests_round_like_the_driver_and_bad_ones_are_refused() {
        let h = SmInfo::H100_SXM;
        assert_eq!(
            (h.group_for(1), h.group_for(9), h.group_for(128), h.group_for(129)),
            (Some(8), Some(16), Some(128), None)
        );
        let m = Menu::restricted(h, &[20, 24, 64]).unwrap();
        assert_eq!(m.groups.iter().map(|g| g.group_sms).collect::<Vec<_>>(), vec![24, 64]);
        assert!(Menu::restricted(h, &[130]).unwrap_err().to_string().contains("no group of 130 SMs"));
        assert!(Menu::new(SmInfo { total: 8, min_partition: 8, alignment: 8 }).is_err());
        assert!(Menu::new(SmInfo { total: 0, min_partition: 8, alignment: 8 }).is_err());
        let m = Menu::new(h).unwrap();
        assert!(m.clone().with_actual(0, 8, 130).is_err());
        assert!(m.clone().with_actual(0, 0, 132).is_err());
        assert_eq!(m.with_actual(0, 8, 120).unwrap().groups[0].remainder_sms, 120);
    }

    #[test]
    fn hopper_groups_are_multiples_of_eight_whatever_the_driver_reports() {
        let odd = SmInfo { total: 132, min_partition: 2, alignment: 2 };
        assert_eq!(SmInfo::for_device(odd, (9, 0)), SmInfo::H100_SXM);
        assert_eq!(SmInfo::for_device(SmInfo::H100_SXM, (9, 0)), SmInfo::H100_SXM);
        let ampere = SmInfo { total: 108, min_partition: 2, alignment: 0 };
        assert_eq!(SmInfo::for_device(ampere, (8, 0)), SmInfo { total: 108, min_partition: 2, alignment: 1 });
        let menu = Menu::new(SmInfo::for_device(odd, (9, 0))).unwrap();
        assert!(menu.groups.iter().all(|g| g.group_sms % 8 == 0));
    }

    #[test]
    fn refused_splits_leave_the_menu_without_them() {
        let menu = Menu::new(SmInfo::H100_SXM).unwrap().without(&[0, 3]);
        assert_eq!(menu.groups.len(), 14);
        assert!(menu.lookup(8).is_none() && menu.lookup(124).is_none() && menu.lookup(32).is_none());
        assert_eq!(menu.lookup(16).unwrap().prefill_sms, 116);
    }

    proptest! {
        /// Partitions never overlap or exceed the SM count: group + remainder <= total, both sides non-empty
        /// where a split is offered, sizes aligned and at least the minimum, and every offered split found again.
        #[test]
        fn menu_partitions_fit_the_device(total in 1u32..300, min in 1u32..17, align in 1u32..9) {
            let info = SmInfo { total, min_partition: min, alignment: align };
            if let Ok(menu) = Menu::new(info) {
                for g in &menu.groups {
                    prop_assert!(g.group_sms >= min && g.group_sms % align == 0);
                    prop_assert!(g.group_sms + g.remainder_sms == total && g.remainder_sms > 0);
                }
                for (d, p) in menu.splits() {
                    prop_assert_eq!(d + p, total);
                    let c = menu.lookup(d).unwrap();
                    prop_assert_eq!((c.decode_sms, c.prefill_sms), (d, p));
                }
                prop_assert!(menu.sm_counts().iter().all(|&s| s <= total));
            }
        }
    }
}
