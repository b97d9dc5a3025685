//! Sweep files: what to run. A sweep file (TOML) names the options of `duet sim` shared by every point
//! (`[base]`), the values to combine (`[axes]`, every combination is a point), the policies with their
//! parameters (`[[policy]]`), and optionally a capacity search (`[capacity]`). Keys are `duet sim` option
//! names without the leading `--` (`rate`, `trace`, `model`, `token-budget`, `slo-tbt-ms`, ...); `trace =
//! "bundled"` means the bundled excerpt. See `docs/SWEEPS.md`.
//!
//! Points are ordered policy by policy, then by the axes in file order (the last axis varies fastest), so a
//! sweep file always expands to the same sequence; a point's id is a hash of its options, so it names the
//! same simulation in every run.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::CommandFactory;
use toml::{Table, Value};

use crate::cli::SimArgs;

/// Top-level keys a sweep file may have.
const TOP_KEYS: [&str; 6] = ["name", "out", "details", "base", "axes", "policy"];
/// Per-point files a sweep can keep (`details`).
pub const DETAIL_FILES: [&str; 3] = ["requests.csv", "decisions.csv", "iterations.csv"];
/// Keys of a `[capacity]` table.
const CAPACITY_KEYS: [&str; 5] = ["low", "high", "tolerance", "max", "min"];

/// One option of a point: `duet sim --KEY VALUE` (a `true` boolean is the bare flag).
#[derive(Debug, Clone, PartialEq)]
pub struct Opt {
    /// Option name without `--`.
    pub key: String,
    /// Value as written on the command line (point ids, labels and results columns use it).
    pub value: String,
    /// Whether the option is a boolean flag (`--shuffle-lengths`).
    pub flag: bool,
    /// The value as the sweep file typed it (what the simulation's options are built from).
    pub typed: Value,
}

/// One simulation of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Position in the full sweep (0-based).
    pub index: usize,
    /// Policy label.
    pub label: String,
    /// Options: base, then axes, then the policy's.
    pub opts: Vec<Opt>,
    /// The axis values other than `rate` and `seed`, as `key=value; ...` (empty when there are none): points
    /// with equal groups are compared in one figure.
    pub group: String,
    /// Bundle axes: `(axis name, value label)`.
    pub bundles: Vec<(String, String)>,
}

/// One value of an axis: a single option (`rate = [1, 2]`), or a bundle of options with a label (`ablation =
/// [{ label = "no host overhead", iteration-overhead-us = 0, graph-launch-us = 0 }, ...]`).
#[derive(Debug, Clone, PartialEq)]
struct AxisValue {
    /// How the value appears in groups and tables.
    shown: String,
    /// Options it sets (none for `trace = "bundled"` or a bundle with only a label).
    opts: Vec<Opt>,
    /// Whether it is a bundle.
    bundle: bool,
}

/// Parses an axis whose values are inline tables: each needs a `label`; other keys are `duet sim` options.
fn bundle_axis(file: &Path, axis: &str, values: &[Value], known: &[(String, bool)]) -> Result<Vec<AxisValue>> {
    let mut out: Vec<AxisValue> = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let t = v.as_table().expect("checked by the caller");
        let where_ = format!("axes.{axis} #{}", i + 1);
        let label = match t.get("label") {
            Some(Value::String(s)) => s.clone(),
            _ => bail!(
                "{}: [{where_}] needs `label = \"...\"` (a bundle of options is named by its label)",
                file.display()
            ),
        };
        if out.iter().any(|a| a.shown == label) {
            bail!("{}: [axes] `{axis}` has the label {label:?} twice", file.display());
        }
        let mut opts = Vec::new();
        for (k, v) in t.iter().filter(|(k, _)| k.as_str() != "label") {
            opts.extend(opt(file, &where_, k, v, known)?);
        }
        out.push(AxisValue { shown: label, opts, bundle: true });
    }
    Ok(out)
}

/// Bisection settings of `duet capacity`.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacitySpec {
    /// Lowest rate tried, req/s.
    pub low: f64,
    /// Highest rate tried, req/s.
    pub high: f64,
    /// Stop when the bracket is this narrow, req/s.
    pub tolerance: f64,
    /// `summary.json` fields that must be <= a limit (e.g. `p99_ttft_ms = 5000`).
    pub max: Vec<(String, f64)>,
    /// `summary.json` fields that must be >= a limit (e.g. `slo_attainment = 0.9`).
    pub min: Vec<(String, f64)>,
}

/// A parsed sweep file.
#[derive(Debug, Clone)]
pub struct SweepSpec {
    /// The file it came from.
    pub path: PathBuf,
    /// Name (default: the file stem).
    pub name: String,
    /// Default output directory.
    pub out: Option<PathBuf>,
    /// Per-point files to keep besides `summary.json`: any of [`DETAIL_FILES`] (`details = true`: all).
    pub details: Vec<String>,
    /// Every point, in order.
    pub points: Vec<Point>,
    /// The `[capacity]` table, if any.
    pub capacity: Option<CapacitySpec>,
}

/// Long option names of `duet sim` (what a sweep key may be).
fn sim_options() -> Vec<(String, bool)> {
    #[derive(clap::Parser)]
    struct Probe {
        #[command(flatten)]
        sim: SimArgs,
    }
    Probe::command()
        .get_arguments()
        .filter_map(|a| {
            let flag = matches!(a.get_action(), clap::ArgAction::SetTrue);
            a.get_long().map(|l| (l.to_string(), flag))
        })
        .collect()
}

fn scalar(file: &Path, table: &str, key: &str, v: &Value) -> Result<String> {
    Ok(match v {
        Value::String(s) => s.clone(),
        Value::Integer(i) => i.to_string(),
        Value::Float(f) => format!("{f}"),
        Value::Boolean(b) => b.to_string(),
        other => bail!(
            "{}: [{table}] `{key}`: expected a string, number or boolean, got {}",
            file.display(),
            other.type_str()
        ),
    })
}

/// Checks `key` is a `duet sim` option and turns `v` into an [`Opt`] (`None` for a `false` flag or the bundled
/// trace).
fn opt(file: &Path, table: &str, key: &str, v: &Value, known: &[(String, bool)]) -> Result<Option<Opt>> {
    let Some((_, flag)) = known.iter().find(|(k, _)| k == key) else {
        bail!(
            "{}: unknown key `{key}` in [{table}]: not an option of `duet sim` (see `duet sim --help`)",
            file.display()
        );
    };
    let value = scalar(file, table, key, v)?;
    if *flag {
        return match v {
            Value::Boolean(true) => {
                Ok(Some(Opt { key: key.into(), value: String::new(), flag: true, typed: Value::Boolean(true) }))
            }
            Value::Boolean(false) => Ok(None),
            _ => bail!("{}: [{table}] `{key}` is a flag: use true or false", file.display()),
        };
    }
    if key == "trace" && value == "bundled" {
        return Ok(None);
    }
    Ok(Some(Opt { key: key.into(), value, flag: false, typed: v.clone() }))
}

fn number(file: &Path, table: &str, key: &str, v: &Value) -> Result<f64> {
    match v {
        Value::Integer(i) => Ok(*i as f64),
        Value::Float(f) if f.is_finite() => Ok(*f),
        _ => bail!("{}: [{table}] `{key}` must be a number", file.display()),
    }
}

fn limits(file: &Path, table: &str, v: Option<&Value>) -> Result<Vec<(String, f64)>> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let t = v.as_table().with_context(|| format!("{}: [{table}] must be a table", file.display()))?;
    t.iter().map(|(k, v)| Ok((k.clone(), number(file, table, k, v)?))).collect()
}

fn capacity(file: &Path, v: &Value) -> Result<CapacitySpec> {
    let t = v.as_table().with_context(|| format!("{}: `capacity` must be a table", file.display()))?;
    for k in t.keys() {
        if !CAPACITY_KEYS.contains(&k.as_str()) {
            bail!("{}: unknown key `{k}` in [capacity] (known: {})", file.display(), CAPACITY_KEYS.join(", "));
        }
    }
    let get = |k: &str, d: f64| t.get(k).map_or(Ok(d), |v| number(file, "capacity", k, v));
    let c = CapacitySpec {
        low: get("low", 0.25)?,
        high: get("high", 64.0)?,
        tolerance: get("tolerance", 0.05)?,
        max: limits(file, "capacity.max", t.get("max"))?,
        min: limits(file, "capacity.min", t.get("min"))?,
    };
    if !(c.low > 0.0 && c.high > c.low && c.tolerance > 0.0) {
        bail!("{}: [capacity] needs 0 < low < high and tolerance > 0", file.display());
    }
    if c.max.is_empty() && c.min.is_empty() {
        bail!(
            "{}: [capacity] needs at least one limit, e.g. [capacity.max] p99_ttft_ms = 5000 or [capacity.min] \
             slo_attainment = 0.9",
            file.display()
        );
    }
    Ok(c)
}

/// FNV-1a (64 bit) of `s`: stable across runs, platforms and Rust versions.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

impl Point {
    /// Stable id: hex FNV-1a of the options sorted by key (the label is not part of it).
    pub fn id(&self) -> String {
        let mut opts: Vec<String> = self.opts.iter().map(|o| format!("{}={}", o.key, o.value)).collect();
        opts.sort();
        format!("{:016x}", fnv1a(&opts.join("\n")))
    }

    /// Whether the point belongs to shard `(i, n)` (1-based: `index % n == i - 1`); every point belongs to
    /// exactly one shard of `n`. `None` (no sharding) selects every point.
    pub fn in_shard(&self, shard: Option<(usize, usize)>) -> bool {
        shard.is_none_or(|(i, n)| self.index % n == i - 1)
    }

    /// The `duet sim` arguments of the point.
    pub fn argv(&self) -> Vec<String> {
        let mut v = Vec::with_capacity(self.opts.len() * 2);
        for o in &self.opts {
            v.push(format!("--{}", o.key));
            if !o.flag {
                v.push(o.value.clone());
            }
        }
        v
    }

    /// Value of option `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.opts.iter().find(|o| o.key == key).map(|o| o.value.as_str())
    }

    /// The point with option `key` set to the number `value` (replaced or appended).
    pub fn with(&self, key: &str, value: f64) -> Point {
        let mut p = self.clone();
        let (text, typed) = (format!("{value}"), Value::Float(value));
        match p.opts.iter_mut().find(|o| o.key == key) {
            Some(o) => {
                o.value = text;
                o.typed = typed;
            }
            None => p.opts.push(Opt { key: key.into(), value: text, flag: false, typed }),
        }
        p
    }
}

impl SweepSpec {
    /// Reads and expands a sweep file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading sweep file {}", path.display()))?;
        Self::parse(&text, path)
    }

    /// Parses sweep-file text (`path` is for messages and the default name).
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let mut root: Table = text.parse().with_context(|| format!("{}: not valid TOML", path.display()))?;
        let cap = root.remove("capacity").map(|v| capacity(path, &v)).transpose()?;
        for k in root.keys() {
            if !TOP_KEYS.contains(&k.as_str()) {
                bail!("{}: unknown top-level key `{k}` (known: {}, capacity)", path.display(), TOP_KEYS.join(", "));
            }
        }
        let known = sim_options();
        let name = match root.get("name") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => bail!("{}: `name` must be a string", path.display()),
            None => path.file_stem().map_or("sweep".into(), |s| s.to_string_lossy().into_owned()),
        };
        let out = match root.get("out") {
            Some(Value::String(s)) => Some(PathBuf::from(s)),
            Some(_) => bail!("{}: `out` must be a string (a directory)", path.display()),
            None => None,
        };
        let details = match root.get("details") {
            Some(Value::Boolean(true)) => DETAIL_FILES.iter().map(|f| f.to_string()).collect(),
            Some(Value::Boolean(false)) | None => Vec::new(),
            Some(Value::Array(a)) => {
                let mut v = Vec::new();
                for f in a {
                    match f.as_str() {
                        Some(f) if DETAIL_FILES.contains(&f) => v.push(f.to_string()),
                        _ => bail!(
                            "{}: `details` lists {f}: expected true, false or a list of {}",
                            path.display(),
                            DETAIL_FILES.join(", ")
                        ),
                    }
                }
                v
            }
            Some(_) => bail!("{}: `details` must be true, false or a list of file names", path.display()),
        };
        let empty = Table::new();
        let table = |k: &str| -> Result<&Table> {
            match root.get(k) {
                Some(Value::Table(t)) => Ok(t),
                Some(_) => bail!("{}: `{k}` must be a table ([{k}])", path.display()),
                None => Ok(&empty),
            }
        };
        let mut base = Vec::new();
        for (k, v) in table("base")? {
            base.extend(opt(path, "base", k, v, &known)?);
        }
        let mut axes: Vec<(String, Vec<AxisValue>)> = Vec::new();
        for (k, v) in table("axes")? {
            let values = v.as_array().with_context(|| format!("{}: [axes] `{k}` must be a list", path.display()))?;
            if values.is_empty() {
                bail!("{}: [axes] `{k}` is an empty list", path.display());
            }
            let parsed = if values.iter().all(Value::is_table) {
                bundle_axis(path, k, values, &known)?
            } else {
                let mut vs = Vec::new();
                for v in values {
                    let o = opt(path, "axes", k, v, &known)?;
                    let shown = o.as_ref().map_or("bundled".to_string(), |o| o.value.clone());
                    vs.push(AxisValue { shown, opts: o.into_iter().collect(), bundle: false });
                }
                vs
            };
            for key in parsed.iter().flat_map(|a| a.opts.iter().map(|o| &o.key)) {
                if base.iter().any(|o| &o.key == key) {
                    bail!("{}: `{key}` is set in both [base] and [axes]", path.display());
                }
            }
            axes.push((k.clone(), parsed));
        }
        let policies = match root.get("policy") {
            Some(Value::Array(a)) => a.clone(),
            Some(_) => bail!("{}: `policy` must be an array of tables ([[policy]])", path.display()),
            None => bail!("{}: no [[policy]] table: name at least one policy", path.display()),
        };
        if policies.is_empty() {
            bail!("{}: no [[policy]] table: name at least one policy", path.display());
        }
        let mut points = Vec::new();
        let mut labels = Vec::new();
        for (pi, p) in policies.iter().enumerate() {
            let t =
                p.as_table().with_context(|| format!("{}: [[policy]] #{} is not a table", path.display(), pi + 1))?;
            let where_ = format!("policy #{}", pi + 1);
            let mut popts = Vec::new();
            let mut label = None;
            for (k, v) in t {
                if k == "label" {
                    label = Some(scalar(path, &where_, k, v)?);
                    continue;
                }
                let in_axes = axes.iter().any(|(_, vs)| vs.iter().any(|a| a.opts.iter().any(|o| &o.key == k)));
                if base.iter().any(|o| &o.key == k) || in_axes {
                    bail!("{}: [{where_}] sets `{k}`, which [base] or [axes] already sets", path.display());
                }
                popts.extend(opt(path, &where_, k, v, &known)?);
            }
            if !popts.iter().any(|o| o.key == "policy") {
                bail!("{}: [{where_}] has no `policy` key (chunked, prefill-first, duet, ...)", path.display());
            }
            let label = label.unwrap_or_else(|| {
                popts
                    .iter()
                    .map(|o| if o.key == "policy" { o.value.clone() } else { format!("{}={}", o.key, o.value) })
                    .collect::<Vec<_>>()
                    .join(" ")
            });
            if labels.contains(&label) {
                bail!("{}: two policies share the label {label:?}", path.display());
            }
            labels.push(label.clone());
            // Cartesian product of the axes, last axis fastest.
            let mut combos: Vec<Vec<(String, AxisValue)>> = vec![Vec::new()];
            for (k, values) in &axes {
                combos = combos
                    .into_iter()
                    .flat_map(|c| {
                        values.iter().map(move |v| {
                            let mut c = c.clone();
                            c.push((k.clone(), v.clone()));
                            c
                        })
                    })
                    .collect();
            }
            for combo in combos {
                let group = combo
                    .iter()
                    .filter(|(k, _)| k != "rate" && k != "seed")
                    .map(|(k, v)| format!("{k}={}", v.shown))
                    .collect::<Vec<_>>()
                    .join("; ");
                let bundles =
                    combo.iter().filter(|(_, v)| v.bundle).map(|(k, v)| (k.clone(), v.shown.clone())).collect();
                let mut opts = base.clone();
                opts.extend(combo.into_iter().flat_map(|(_, v)| v.opts));
                opts.extend(popts.iter().cloned());
                points.push(Point { index: points.len(), label: label.clone(), opts, group, bundles });
            }
        }
        Ok(Self { path: path.to_path_buf(), name, out, details, points, capacity: cap })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
name = "t"
[base]
model = "qwen3-8b"
slo-tbt-ms = 100
[axes]
trace = ["bundled", "x.csv"]
rate = [1, 2.5]
[[policy]]
policy = "chunked"
token-budget = 512
[[policy]]
label = "duet"
policy = "duet"
shuffle-lengths = true
"#;

    fn parse(s: &str) -> Result<SweepSpec> {
        SweepSpec::parse(s, Path::new("sweep.toml"))
    }

    #[test]
    fn expands_policies_then_axes_in_file_order() {
        let s = parse(EXAMPLE).unwrap();
        assert_eq!(s.points.len(), 8);
        let p = &s.points[1];
        assert_eq!(p.label, "chunked token-budget=512");
        assert_eq!(
            p.argv(),
            [
                "--model",
                "qwen3-8b",
                "--slo-tbt-ms",
                "100",
                "--rate",
                "2.5",
                "--policy",
                "chunked",
                "--token-budget",
                "512"
            ]
        );
        assert_eq!(p.group, "trace=bundled");
        assert_eq!(s.points[2].group, "trace=x.csv");
        assert_eq!(s.points[2].get("rate"), Some("1"));
        assert_eq!(s.points[7].argv().last().unwrap(), "--shuffle-lengths");
        let ids: std::collections::BTreeSet<String> = s.points.iter().map(Point::id).collect();
        assert_eq!(ids.len(), 8, "ids must differ");
        assert_eq!(parse(EXAMPLE).unwrap().points[5].id(), s.points[5].id(), "ids are stable");
    }

    proptest::proptest! {
        /// However the axes and policies are shaped: the sweep has exactly (product of axis lengths) x policies
        /// points, their ids are distinct, and every point falls in exactly one shard of any shard count.
        #[test]
        fn expansion_and_sharding_cover_every_point_once(
            lens in proptest::collection::vec(1usize..4, 0..4),
            policies in 1usize..4,
            shards in 1usize..6,
        ) {
            let names = ["rate", "seed", "num-requests", "cap-output"];
            let mut text = String::from("[axes]\n");
            for (k, n) in lens.iter().enumerate() {
                let values: Vec<String> = (1..=*n).map(|v| (v * 10).to_string()).collect();
                text.push_str(&format!("{} = [{}]\n", names[k], values.join(", ")));
            }
            for p in 0..policies {
                text.push_str(&format!("[[policy]]\nlabel = \"p{p}\"\npolicy = \"chunked\"\ntoken-budget = {}\n", 512 * (p + 1)));
            }
            let s = parse(&text).unwrap();
            let expected = lens.iter().product::<usize>() * policies;
            proptest::prop_assert_eq!(s.points.len(), expected);
            let ids: std::collections::BTreeSet<String> = s.points.iter().map(Point::id).collect();
            proptest::prop_assert_eq!(ids.len(), expected);
            for p in &s.points {
                let owners = (1..=shards).filter(|&i| p.in_shard(Some((i, shards)))).count();
                proptest::prop_assert_eq!(owners, 1);
            }
        }
    }

    #[test]
    fn bundle_axes_set_several_options_under_one_label() {
        let s = parse(
            r#"
[axes]
ablation = [{ label = "baseline" }, { label = "no host", iteration-overhead-us = 0, graph-launch-us = 0 }]
rate = [1]
[[policy]]
policy = "duet"
"#,
        )
        .unwrap();
        assert_eq!(s.points.len(), 2);
        assert_eq!(s.points[0].argv(), ["--rate", "1", "--policy", "duet"]);
        assert_eq!(
            s.points[1].argv(),
            ["--iteration-overhead-us", "0", "--graph-launch-us", "0", "--rate", "1", "--policy", "duet"]
        );
        assert_eq!(s.points[1].group, "ablation=no host");
        assert_eq!(s.points[1].bundles, [("ablation".to_string(), "no host".to_string())]);
        for (text, needle) in [
            ("[axes]\nx = [{ rate = 1 }]\n[[policy]]\npolicy = \"duet\"", "needs `label"),
            ("[axes]\nx = [{ label = \"a\", bogus = 1 }]\n[[policy]]\npolicy = \"duet\"", "unknown key `bogus`"),
            (
                "[base]\nrate = 1\n[axes]\nx = [{ label = \"a\", rate = 2 }]\n[[policy]]\npolicy = \"duet\"",
                "both [base] and [axes]",
            ),
        ] {
            let e = format!("{:#}", parse(text).unwrap_err());
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_tables_name_the_key() {
        for (text, needle) in [
            ("bogus = 1\n[[policy]]\npolicy = \"chunked\"", "unknown top-level key `bogus`"),
            ("[base]\nmodle = \"x\"\n[[policy]]\npolicy = \"chunked\"", "unknown key `modle` in [base]"),
            ("[axes]\nrate = 2\n[[policy]]\npolicy = \"chunked\"", "[axes] `rate` must be a list"),
            ("[[policy]]\ntoken-budget = 5", "has no `policy` key"),
            ("[base]\nrate = 1\n[axes]\nrate = [1]\n[[policy]]\npolicy = \"chunked\"", "both [base] and [axes]"),
            ("[capacity]\nlow = 1\n[[policy]]\npolicy = \"chunked\"", "at least one limit"),
            ("[capacity]\nfoo = 1\n[[policy]]\npolicy = \"chunked\"", "unknown key `foo` in [capacity]"),
            ("[base]\nout = \"d\"\n[[policy]]\npolicy = \"chunked\"", "unknown key `out` in [base]"),
            ("name = \"x\"", "no [[policy]]"),
            ("details = [\"trace.csv\"]\n[[policy]]\npolicy = \"chunked\"", "`details` lists \"trace.csv\""),
        ] {
            let e = format!("{:#}", parse(text).unwrap_err());
            assert!(e.contains(needle) && e.contains("sweep.toml"), "{text:?}: {e}");
        }
    }
}
