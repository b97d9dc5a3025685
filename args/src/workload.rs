//! Turns [`WorkloadArgs`] into a [`Workload`]: load or generate, then apply the transforms in their documented
//! order.

use anyhow::{Context, Result, bail};
use duet_traces::arrivals::ArrivalProcess;
use duet_traces::burstgpt::BurstFilter;
use duet_traces::generate::{self, LengthDist, Lengths, Synthetic};
use duet_traces::{LoadOptions, TraceData, Workload, transform};

use crate::sim_args::WorkloadArgs;

/// Load options from the BurstGPT filters.
pub fn load_options(model: Option<&String>, log: Option<&String>) -> LoadOptions {
    LoadOptions { burstgpt: BurstFilter { model: model.cloned(), log_type: log.cloned() } }
}

/// The trace file last loaded, by path, load options and the file's length and modification time: a sweep loads
/// the same file for every point, and parsing it is a few percent of a point's run.
type Loaded = (std::path::PathBuf, LoadOptions, u64, Option<std::time::SystemTime>, std::sync::Arc<TraceData>);
static LAST_LOADED: std::sync::Mutex<Option<Loaded>> = std::sync::Mutex::new(None);

/// [`duet_traces::load_path`], reusing the last file loaded when neither it nor the options changed.
fn load_cached(path: &std::path::Path, opts: &LoadOptions) -> Result<std::sync::Arc<TraceData>> {
    let meta = std::fs::metadata(path).ok();
    let (len, modified) = (meta.as_ref().map_or(0, |m| m.len()), meta.and_then(|m| m.modified().ok()));
    let last = LAST_LOADED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((p, o, l, m, data)) = last.as_ref()
        && p == path
        && o == opts
        && *l == len
        && *m == modified
        && modified.is_some()
    {
        return Ok(data.clone());
    }
    drop(last);
    let data = std::sync::Arc::new(duet_traces::load_path(path, opts)?);
    *LAST_LOADED.lock().unwrap_or_else(|e| e.into_inner()) =
        Some((path.to_path_buf(), opts.clone(), len, modified, data.clone()));
    Ok(data)
}

/// Parses `MIN:MAX` (either side may be empty) into inclusive bounds.
fn range(s: &str) -> Result<(u32, u32)> {
    let (lo, hi) = s.split_once(':').with_context(|| format!("range {s:?} must be MIN:MAX"))?;
    let num = |v: &str, d: u32| {
        if v.trim().is_empty() {
            Ok(d)
        } else {
            v.trim().parse::<u32>().with_context(|| format!("range {s:?}: {v:?} is not an integer"))
        }
    };
    let (lo, hi) = (num(lo, 0)?, num(hi, u32::MAX)?);
    if lo > hi {
        bail!("range {s:?}: MIN > MAX");
    }
    Ok((lo, hi))
}

/// Loads or generates the workload, then applies rate, window, filters, caps, shuffle and first-N.
/// `context` is the model's context limit, checked last.
pub fn build(a: &WorkloadArgs, context: Option<u32>) -> Result<Workload> {
    let data = match &a.trace {
        Some(p) => load_cached(p, &load_options(a.burstgpt_model.as_ref(), a.burstgpt_log.as_ref()))?,
        None => std::sync::Arc::new(TraceData::Timed(duet_traces::bundled_default())),
    };
    let arrivals: ArrivalProcess = a.arrivals.parse()?;
    let lengths_given = match (&a.input_len, &a.output_len) {
        (Some(i), Some(o)) => {
            Some(Lengths::Independent { input: i.parse::<LengthDist>()?, output: o.parse::<LengthDist>()? })
        }
        _ => None,
    };
    let mut w = match (&*data, a.synthetic) {
        (TraceData::Timed(base), None) => match (a.rate, a.rate_scale) {
            (Some(r), _) => transform::rescale_to_rate(base.clone(), r)?,
            (None, Some(f)) => transform::scale_rate(base.clone(), f)?,
            (None, None) => base.clone(),
        },
        (_, synthetic) => {
            let (pairs, default_rate, source) = match &*data {
                TraceData::Timed(w) => (w.lengths(), w.mean_rate(), &w.source),
                TraceData::Lengths(t) => (t.pairs.clone(), None, &t.source),
            };
            let rate = match (a.rate, default_rate, arrivals) {
                (Some(r), _, _) => r,
                (None, Some(r), _) => r,
                (None, None, ArrivalProcess::Burst) => 1.0,
                (None, None, _) => bail!(
                    "{source} has no arrival times: pass --rate R (requests/s) for the {arrivals} arrival process"
                ),
            };
            // A length-only trace without --synthetic pairs every row, in order, with the arrival process.
            let (n, lengths) = match synthetic {
                Some(n) => (n, lengths_given.unwrap_or(Lengths::Empirical(pairs))),
                None => (pairs.len(), Lengths::Sequential(pairs)),
            };
            let w = generate::generate(&Synthetic { n, rate_per_s: rate, arrivals, lengths, seed: a.seed })?;
            match a.rate_scale {
                Some(f) => transform::scale_rate(w, f)?,
                None => w,
            }
        }
    };
    if let Some(win) = &a.window {
        let start = a.window_start.as_deref().map(transform::parse_duration_ns).transpose()?.unwrap_or(0);
        w = transform::window(w, start, transform::parse_duration_ns(win)?)?;
    }
    if let Some(r) = &a.input_range {
        let (lo, hi) = range(r)?;
        w = transform::filter(w, &format!("input in {lo}..={hi}"), |i, _| (lo..=hi).contains(&i))?;
    }
    if let Some(r) = &a.output_range {
        let (lo, hi) = range(r)?;
        w = transform::filter(w, &format!("output in {lo}..={hi}"), |_, o| (lo..=hi).contains(&o))?;
    }
    if a.cap_input.is_some() || a.cap_output.is_some() {
        w = transform::cap_lengths(w, a.cap_input, a.cap_output)?;
    }
    if a.shuffle_lengths {
        w = transform::shuffle_lengths(w, a.seed);
    }
    if let Some(n) = a.num_requests {
        w = transform::first_n(w, n)?;
    }
    if let Some(ctx) = context {
        w = transform::fit_context(w, ctx, a.cap_to_context)?;
    }
    Ok(w)
}
