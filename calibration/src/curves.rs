//! [`ProfileCurves`]: a [`Profile`] resolved per SM count for the cost model (`duet_sim::cost::DeviceCurves`):
//! GEMM efficiency by token count and SMs with wave quantisation, attention and elementwise bandwidths, floors.

use duet_sim::cost::ops::Work;
use duet_sim::cost::{AttentionRates, DeviceCurves, Elementwise};

use crate::interp::{at, locate, row_value};
use crate::profile::{ELEMENTWISE_OPS, Profile, elementwise_name};

impl Profile {
    /// The curves the cost model uses, with every per-row table resolved for each SM count in advance (the cost
    /// model queries them millions of times per run).
    pub fn curves(&self) -> ProfileCurves {
        let n = self.gpu.num_sms as usize;
        let rows = |t: &[f64]| (0..=n).map(|s| self.row_value(t, s.max(1) as u32)).collect::<Vec<f64>>();
        let eff_by_sm = (0..=n)
            .map(|s| {
                let s = (s.max(1) as u32).clamp(self.sm_counts[0], self.gpu.num_sms);
                // Interpolate the delivered throughput (efficiency x SMs), not the efficiency, so that a table
                // that is monotone in SMs stays monotone between its rows.
                (0..self.gemm.m_grid.len())
                    .map(|j| {
                        let col: Vec<f64> = self
                            .gemm
                            .efficiency
                            .iter()
                            .zip(&self.sm_counts)
                            .map(|(r, &n)| r[j] * f64::from(n))
                            .collect();
                        row_value(&self.sm_counts, self.gpu.num_sms, &col, s) / f64::from(s)
                    })
                    .collect()
            })
            .collect();
        let elementwise = ELEMENTWISE_OPS.iter().map(|op| rows(&self.elementwise[*op].bandwidth)).collect();
        ProfileCurves {
            log_m: self.gemm.m_grid.iter().map(|v| v.log2()).collect(),
            gemm_bw: rows(&self.gemm.bandwidth),
            attn_flops: rows(&self.attention.prefill_flops),
            decode_bw: rows(&self.attention.decode_bandwidth),
            elementwise,
            elementwise_floor_s: ELEMENTWISE_OPS.iter().map(|op| self.elementwise[*op].floor_ns * 1e-9).collect(),
            eff_by_sm,
            p: self.clone(),
        }
    }
}

/// [`DeviceCurves`] backed by a [`Profile`].
#[derive(Debug, Clone)]
pub struct ProfileCurves {
    pub(crate) p: Profile,
    /// log2 of the token grid.
    pub(crate) log_m: Vec<f64>,
    /// Per SM count (index = SMs): resolved table values.
    pub(crate) gemm_bw: Vec<f64>,
    pub(crate) attn_flops: Vec<f64>,
    pub(crate) decode_bw: Vec<f64>,
    /// Per elementwise operator (in `ELEMENTWISE_OPS` order), per SM count.
    pub(crate) elementwise: Vec<Vec<f64>>,
    /// Per elementwise operator, fixed time in seconds.
    pub(crate) elementwise_floor_s: Vec<f64>,
    /// Per SM count, the efficiency at each token-grid point.
    pub(crate) eff_by_sm: Vec<Vec<f64>>,
}

impl ProfileCurves {
    /// GEMM efficiency at `sms` and `m` tokens: log2-linear in tokens, linear in SMs between rows.
    pub fn gemm_efficiency(&self, sms: u32, m: u64) -> f64 {
        let pos = locate(&self.log_m, (m.max(1) as f64).log2());
        at(&self.eff_by_sm[self.idx(sms)], pos)
    }

    fn idx(&self, sms: u32) -> usize {
        sms.clamp(1, self.p.gpu.num_sms) as usize
    }

    /// Wave quantisation; with `split_k`, GEMMs with fewer tiles than SMs are assumed split along K (split-K /
    /// stream-K kernels), which fills the SMs.
    fn wave(&self, sms: u32, m: u64, n: u64) -> f64 {
        let tiles = m.div_ceil(self.p.gemm.tile_m).max(1) * n.div_ceil(self.p.gemm.tile_n).max(1);
        let s = u64::from(sms.max(1));
        if self.p.gemm.split_k && tiles < s {
            return 1.0;
        }
        tiles as f64 / (tiles.div_ceil(s) * s) as f64
    }
}

impl DeviceCurves for ProfileCurves {
    fn gemm_flops(&self, sms: u32, m: u64, n: u64) -> f64 {
        let sms = sms.clamp(1, self.p.gpu.num_sms);
        self.p.gpu.peak_flops * self.gemm_efficiency(sms, m) * f64::from(sms) / f64::from(self.p.gpu.num_sms)
            * self.wave(sms, m, n)
    }

    fn attention_flops(&self, sms: u32) -> f64 {
        self.attn_flops[self.idx(sms)]
    }

    fn bandwidth(&self, sms: u32) -> f64 {
        self.gemm_bw[self.idx(sms)]
    }

    fn gemm_time(&self, sms: u32, m: u64, n: u64, w: Work) -> f64 {
        // Rows are processed in whole tiles: compute work is padded up to a multiple of `tile_m` rows.
        let pad_to = |v: u64, t: u64| if v > 0 { (v.div_ceil(t.max(1)) * t.max(1)) as f64 / v as f64 } else { 1.0 };
        let pad = pad_to(m, self.p.gemm.pad_m.unwrap_or(1)) * pad_to(n, self.p.gemm.pad_n.unwrap_or(1));
        let (tc, tm) = (w.flops * pad / self.gemm_flops(sms, m, n), w.bytes / self.bandwidth(sms));
        let t = match self.p.gemm.blend {
            Some(b) => {
                // hi x (1 + (lo / hi)^b)^(1/b): scaled by the larger term so the powers stay in range.
                let (hi, lo) = if tc >= tm { (tc, tm) } else { (tm, tc) };
                if hi > 0.0 { hi * (1.0 + (lo / hi).powf(b)).powf(1.0 / b) } else { 0.0 }
            }
            None => tc.max(tm),
        };
        t + self.p.gemm.floor_ns * 1e-9
    }

    fn elementwise_time(&self, sms: u32, op: Elementwise, w: Work) -> f64 {
        let k = match op {
            Elementwise::RmsNorm => 0,
            Elementwise::SiluMul => 1,
            Elementwise::Rotary => 2,
            Elementwise::Embedding => 3,
            Elementwise::Add => 4,
        };
        debug_assert_eq!(ELEMENTWISE_OPS[k], elementwise_name(op));
        w.bytes / self.elementwise[k][self.idx(sms)] + self.elementwise_floor_s[k]
    }

    fn attention_time(&self, sms: u32, w: Work, decode: bool) -> f64 {
        let bw = if decode { self.decode_bw[self.idx(sms)] } else { self.bandwidth(sms) };
        (w.flops / self.attention_flops(sms)).max(w.bytes / bw)
    }

    fn attention_rates(&self, sms: u32) -> Option<AttentionRates> {
        Some(AttentionRates {
            flops: self.attention_flops(sms),
            prefill_bandwidth: self.bandwidth(sms),
            decode_bandwidth: self.decode_bw[self.idx(sms)],
        })
    }
}
