//! Figures: each kind is plain data, drawn once by one function generic over the plotters backend, and written
//! as `STEM.png` (bitmap, for slides) and `STEM.svg` (vector, for papers).
//!
//! Conventions: axis labels carry units; every figure with more than one series has a legend; series colours
//! come from a [`ColorMap`] shared by all figures of a report; limits (SLOs) are dashed grey lines named in the
//! legend. Latencies that span orders of magnitude use a log axis.

use std::ops::Range;
use std::path::{Path, PathBuf};

use plotters::chart::{ChartContext, MeshStyle};
use plotters::coord::CoordTranslate;
use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

mod bar;
pub use bar::BarChart;

use crate::error::ReportError;
use crate::glyphs::GlyphFix;
use crate::style::{ColorMap, FONT_FAMILY, Marker, ensure_font};

/// Bitmap size, pixels.
const SIZE: (u32, u32) = (1100, 680);
const GREY: RGBColor = RGBColor(0x60, 0x60, 0x60);

/// One line of a [`LineChart`]: points `(x, y)`, optionally with a band `(x, low, high)` (e.g. min-max over
/// seeds).
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Legend label (also the key into the colour map).
    pub label: String,
    /// Points, drawn in x order.
    pub points: Vec<(f64, f64)>,
    /// Optional band around the line.
    pub band: Vec<(f64, f64, f64)>,
}

/// A horizontal or vertical reference line (an SLO limit).
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    /// Legend label, e.g. `SLO 100 ms`.
    pub label: String,
    /// Position on the value axis.
    pub value: f64,
}

/// y against x for several labelled series (throughput vs rate, P99 TBT vs rate, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// Title (top).
    pub title: String,
    /// x-axis label with unit.
    pub x_label: String,
    /// y-axis label with unit.
    pub y_label: String,
    /// Series.
    pub lines: Vec<Line>,
    /// Horizontal reference line.
    pub limit: Option<Limit>,
    /// Log-scaled y axis.
    pub log_y: bool,
}

/// Empirical CDFs of samples (TTFT or TBT per request).
#[derive(Debug, Clone, PartialEq)]
pub struct CdfChart {
    /// Title.
    pub title: String,
    /// x-axis label with unit.
    pub x_label: String,
    /// `(label, samples)` per series.
    pub series: Vec<(String, Vec<f64>)>,
    /// Vertical reference line.
    pub limit: Option<Limit>,
}

/// Predicted against measured values on log-log axes, with the `y = x` line and a relative error band.
#[derive(Debug, Clone, PartialEq)]
pub struct ScatterChart {
    /// Title.
    pub title: String,
    /// Axis quantity with unit, e.g. `kernel time (ms)`.
    pub quantity: String,
    /// `(label, [(measured, predicted)])` per group.
    pub groups: Vec<(String, Vec<(f64, f64)>)>,
    /// Half-width of the band as a fraction (0.1 = +-10%).
    pub band: f64,
}

/// Which SMs a batch ran on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// The whole GPU (aggregated batch).
    Whole,
    /// The prefill partition (drawn from SM 0 up).
    Prefill,
    /// The decode partition (drawn from the top SM down).
    Decode,
}

/// One executed batch of the SM-partition timeline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Block {
    /// Start, seconds.
    pub start_s: f64,
    /// End, seconds.
    pub end_s: f64,
    /// Partition.
    pub lane: Lane,
    /// SMs of the partition.
    pub sms: u32,
}

/// SM partitions over time: every batch as a rectangle over its SMs (from `iterations.csv`), and the times the
/// policy decided to split the GPU as ticks above (from `decisions.csv`).
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineChart {
    /// Title.
    pub title: String,
    /// SMs of the GPU.
    pub total_sms: u32,
    /// Batches, in any order.
    pub blocks: Vec<Block>,
    /// Times of split decisions, seconds.
    pub splits: Vec<f64>,
}

/// Every figure kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Figure {
    /// Series against a swept parameter.
    Line(LineChart),
    /// Empirical CDFs.
    Cdf(CdfChart),
    /// Predicted vs measured.
    Scatter(ScatterChart),
    /// SM-partition timeline.
    Timeline(TimelineChart),
    /// Grouped bars.
    Bar(BarChart),
}

type DrawResult = Result<(), String>;

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn font(size: u32) -> TextStyle<'static> {
    TextStyle::from((FONT_FAMILY, f64::from(size)).into_font())
}

/// `[lo, hi]` of `values` padded by `pad` of the span (a degenerate span gets a unit window).
fn bounds(values: impl Iterator<Item = f64>, pad: f64) -> Option<Range<f64>> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        return None;
    }
    if hi - lo < 1e-12 {
        return Some(lo - 0.5..hi + 0.5);
    }
    let d = (hi - lo) * pad;
    Some(lo - d..hi + d)
}

/// `[lo, hi]` of the positive `values` for a log axis, padded by a factor.
fn log_bounds(values: impl Iterator<Item = f64>) -> Option<Range<f64>> {
    let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
    for v in values.filter(|v| v.is_finite() && *v > 0.0) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        return None;
    }
    Some(lo / 1.3..hi * 1.3)
}

/// A chart builder with the title and axis-label areas every figure uses.
fn frame<'a, 'b, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
    y_area: u32,
) -> ChartBuilder<'a, 'b, DB> {
    let mut b = ChartBuilder::on(root);
    b.caption(title, font(26)).x_label_area_size(55).y_label_area_size(y_area);
    b
}

/// The axis style every figure uses: fonts, a faint minor grid and short tick labels.
trait HouseStyle {
    fn house_style(&mut self) -> &mut Self;
}

impl<X, Y, DB> HouseStyle for MeshStyle<'_, '_, X, Y, DB>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    DB: DrawingBackend,
{
    fn house_style(&mut self) -> &mut Self {
        self.axis_desc_style(font(20))
            .label_style(font(16))
            .light_line_style(RGBColor(0xF2, 0xF2, 0xF2))
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
    }
}

/// Draws the legend of `chart` at `pos` on a translucent white box.
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    pos: SeriesLabelPosition,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .position(pos)
        .label_font(font(16))
        .background_style(WHITE.mix(0.85))
        .border_style(GREY)
        .draw()
        .map_err(err)
}

/// Tick label: at most 3 decimals, no trailing zeros (`4`, `2.5`, `0.125`, `1200`); from 1e5 on, `1e5`.
fn tick(v: &f64) -> String {
    let a = v.abs();
    if a >= 1e5 {
        return format!("{v:e}");
    }
    let s = if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    };
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

impl Figure {
    /// Title, for messages.
    pub fn title(&self) -> &str {
        match self {
            Figure::Line(c) => &c.title,
            Figure::Cdf(c) => &c.title,
            Figure::Scatter(c) => &c.title,
            Figure::Timeline(c) => &c.title,
            Figure::Bar(c) => &c.title,
        }
    }

    /// Writes `STEM.png` and `STEM.svg`; returns both paths.
    pub fn render(&self, colors: &ColorMap, stem: &Path) -> Result<Vec<PathBuf>, ReportError> {
        ensure_font();
        if self.is_empty() {
            return Err(ReportError::NoData(self.title().to_string()));
        }
        let png = stem.with_extension("png");
        let svg = stem.with_extension("svg");
        let draw_err = |path: &Path| {
            let path = path.to_path_buf();
            move |message: String| ReportError::Draw { path: path.clone(), message }
        };
        {
            let root = GlyphFix::new(BitMapBackend::new(&png, SIZE)).into_drawing_area();
            self.draw(&root, colors).map_err(draw_err(&png))?;
            root.present().map_err(err).map_err(draw_err(&png))?;
        }
        {
            let root = SVGBackend::new(&svg, SIZE).into_drawing_area();
            self.draw(&root, colors).map_err(draw_err(&svg))?;
            root.present().map_err(err).map_err(draw_err(&svg))?;
        }
        Ok(vec![png, svg])
    }

    fn is_empty(&self) -> bool {
        match self {
            Figure::Line(c) => c.lines.iter().all(|l| l.points.is_empty()),
            Figure::Cdf(c) => c.series.iter().all(|(_, s)| s.is_empty()),
            Figure::Scatter(c) => c.groups.iter().all(|(_, g)| g.is_empty()),
            Figure::Timeline(c) => c.blocks.is_empty(),
            Figure::Bar(c) => c.is_empty(),
        }
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, colors: &ColorMap) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(err)?;
        let root = root.margin(10, 20, 10, 25);
        match self {
            Figure::Line(c) => {
                let x = bounds(c.lines.iter().flat_map(|l| l.points.iter().map(|p| p.0)), 0.03).ok_or("no x")?;
                let ys = || {
                    c.lines
                        .iter()
                        .flat_map(|l| l.points.iter().map(|p| p.1).chain(l.band.iter().flat_map(|b| [b.1, b.2])))
                        .chain(c.limit.iter().map(|l| l.value))
                };
                // Headroom above the data keeps the legend (upper left) clear of the lines.
                if c.log_y {
                    let y = log_bounds(ys()).ok_or("no positive y value for a log axis")?;
                    let y = y.start..y.end * (y.end / y.start).powf(0.35);
                    draw_lines(&root, c, colors, x, y.log_scale())
                } else {
                    let y = bounds(ys().chain([0.0]), 0.05).ok_or("no y")?;
                    let start = if ys().all(|v| v >= 0.0) { 0.0 } else { y.start };
                    let y = start..y.end + 0.35 * (y.end - start);
                    draw_lines(&root, c, colors, x, y)
                }
            }
            Figure::Cdf(c) => draw_cdf(&root, c, colors),
            Figure::Scatter(c) => draw_scatter(&root, c, colors),
            Figure::Timeline(c) => draw_timeline(&root, c),
            Figure::Bar(c) => bar::draw_bars(&root, c, colors),
        }
    }
}

fn draw_lines<DB: DrawingBackend, Y>(
    root: &DrawingArea<DB, Shift>,
    c: &LineChart,
    colors: &ColorMap,
    x: Range<f64>,
    y: Y,
) -> DrawResult
where
    DB::ErrorType: 'static,
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = frame(root, &c.title, 90).build_cartesian_2d(x.clone(), y).map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(&c.x_label)
        .y_desc(&c.y_label)
        .y_labels(if c.log_y { 40 } else { 10 })
        .house_style()
        .draw()
        .map_err(err)?;
    for l in &c.lines {
        let s = colors.style(&l.label);
        if !l.band.is_empty() {
            let mut band: Vec<(f64, f64)> = l.band.iter().map(|b| (b.0, b.2)).collect();
            band.extend(l.band.iter().rev().map(|b| (b.0, b.1)));
            chart.draw_series([Polygon::new(band, s.color.mix(0.15).filled())]).map_err(err)?;
        }
        let mut pts = l.points.clone();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let color = s.color;
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(3)))
            .map_err(err)?
            .label(l.label.as_str())
            .legend(move |(px, py)| PathElement::new([(px, py), (px + 24, py)], color.stroke_width(3)));
        let fill = color.filled();
        match s.marker {
            Marker::Circle => chart.draw_series(pts.iter().map(|p| Circle::new(*p, 5, fill))).map(|_| ()),
            Marker::Triangle => chart.draw_series(pts.iter().map(|p| TriangleMarker::new(*p, 7, fill))).map(|_| ()),
            Marker::Cross => {
                chart.draw_series(pts.iter().map(|p| Cross::new(*p, 5, color.stroke_width(2)))).map(|_| ())
            }
        }
        .map_err(err)?;
    }
    if let Some(limit) = &c.limit {
        let style = ShapeStyle { color: GREY.to_rgba(), filled: false, stroke_width: 2 };
        chart
            .draw_series(DashedLineSeries::new([(x.start, limit.value), (x.end, limit.value)], 10, 6, style))
            .map_err(err)?
            .label(limit.label.as_str())
            .legend(move |(px, py)| PathElement::new([(px, py), (px + 24, py)], style));
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

fn draw_cdf<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, c: &CdfChart, colors: &ColorMap) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let x = log_bounds(c.series.iter().flat_map(|(_, s)| s.iter().copied()).chain(c.limit.iter().map(|l| l.value)))
        .ok_or("no positive sample for a log axis")?;
    let mut chart = frame(root, &c.title, 80).build_cartesian_2d(x.clone().log_scale(), 0.0..1.0).map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(&c.x_label)
        .y_desc("fraction of requests")
        .x_labels(16)
        .house_style()
        .draw()
        .map_err(err)?;
    for (label, samples) in &c.series {
        let mut v: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite() && *v > 0.0).collect();
        v.sort_by(f64::total_cmp);
        let pts = cdf_steps(&v, CDF_STEPS);
        let color = colors.style(label).color;
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(err)?
            .label(label.as_str())
            .legend(move |(px, py)| PathElement::new([(px, py), (px + 24, py)], color.stroke_width(3)));
    }
    if let Some(limit) = &c.limit {
        let style = ShapeStyle { color: GREY.to_rgba(), filled: false, stroke_width: 2 };
        chart
            .draw_series(DashedLineSeries::new([(limit.value, 0.0), (limit.value, 1.0)], 10, 6, style))
            .map_err(err)?
            .label(limit.label.as_str())
            .legend(move |(px, py)| PathElement::new([(px, py), (px + 24, py)], style));
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)
}

/// Most steps drawn per CDF: larger samples are thinned to evenly spaced ranks (plus the last), which keeps
/// the curve exact to 1/CDF_STEPS in probability and SVG files small.
const CDF_STEPS: usize = 2000;

/// Staircase points of the empirical CDF of the sorted `v`, thinned to at most `max` steps.
fn cdf_steps(v: &[f64], max: usize) -> Vec<(f64, f64)> {
    let n = v.len();
    let ranks: Vec<usize> =
        if n <= max { (0..n).collect() } else { (0..max).map(|k| k * n / max).chain([n - 1]).collect() };
    let mut pts = Vec::with_capacity(ranks.len() * 2);
    let mut prev = 0.0;
    for i in ranks {
        let p = (i + 1) as f64 / n as f64;
        pts.push((v[i], prev));
        pts.push((v[i], p));
        prev = p;
    }
    pts
}

fn draw_scatter<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, c: &ScatterChart, colors: &ColorMap) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let r = log_bounds(c.groups.iter().flat_map(|(_, g)| g.iter().flat_map(|p| [p.0, p.1])))
        .ok_or("no positive value for a log axis")?;
    let mut chart =
        frame(root, &c.title, 90).build_cartesian_2d(r.clone().log_scale(), r.clone().log_scale()).map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(format!("measured {}", c.quantity))
        .x_labels(16)
        .y_labels(16)
        .y_desc(format!("predicted {}", c.quantity))
        .house_style()
        .draw()
        .map_err(err)?;
    let (lo, hi) = (r.start, r.end);
    // The band {(x, y): (1 - b) x <= y <= (1 + b) x} clipped to the square [lo, hi]^2, every vertex inside it
    // (vertices outside the axis range would be drawn clamped, which skews the band).
    let (down, up) = (1.0 - c.band, 1.0 + c.band);
    let band = vec![(lo, lo), (lo / down, lo), (hi, hi * down), (hi, hi), (hi / up, hi), (lo, lo * up)];
    let band_label = format!("±{:.0}% band", c.band * 100.0);
    chart
        .draw_series([Polygon::new(band, RGBColor(0xD8, 0xD8, 0xD8).filled())])
        .map_err(err)?
        .label(band_label)
        .legend(|(px, py)| Rectangle::new([(px, py - 6), (px + 24, py + 6)], RGBColor(0xD8, 0xD8, 0xD8).filled()));
    chart
        .draw_series(LineSeries::new([(lo, lo), (hi, hi)], GREY.stroke_width(1)))
        .map_err(err)?
        .label("predicted = measured")
        .legend(|(px, py)| PathElement::new([(px, py), (px + 24, py)], GREY.stroke_width(1)));
    for (label, pts) in &c.groups {
        let color = colors.style(label).color;
        chart
            .draw_series(pts.iter().map(|p| Circle::new(*p, 4, color.mix(0.7).filled())))
            .map_err(err)?
            .label(label.as_str())
            .legend(move |(px, py)| Circle::new((px + 12, py), 5, color.filled()));
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

fn draw_timeline<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, c: &TimelineChart) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let t0 = c.blocks.iter().map(|b| b.start_s).fold(f64::INFINITY, f64::min);
    let t1 = c.blocks.iter().map(|b| b.end_s).fold(f64::NEG_INFINITY, f64::max).max(t0 + 1e-6);
    let total = f64::from(c.total_sms);
    let mut chart = frame(root, &c.title, 80).build_cartesian_2d(t0..t1, 0.0..total * 1.35).map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("SMs")
        .y_labels(8)
        .house_style()
        .y_label_formatter(&|v: &f64| if *v <= total { tick(v) } else { String::new() })
        .draw()
        .map_err(err)?;
    let (agg, pre, dec) = (RGBColor(0xAA, 0xAA, 0xAA), crate::style::PALETTE[0], crate::style::PALETTE[1]);
    let band = |b: &Block| match b.lane {
        Lane::Whole => (0.0, total),
        Lane::Prefill => (0.0, f64::from(b.sms)),
        Lane::Decode => (total - f64::from(b.sms), total),
    };
    for (lane, color, label) in [
        (Lane::Whole, agg, "aggregated batch (all SMs)"),
        (Lane::Prefill, pre, "prefill partition"),
        (Lane::Decode, dec, "decode partition"),
    ] {
        chart
            .draw_series(c.blocks.iter().filter(|b| b.lane == lane).map(|b| {
                let (lo, hi) = band(b);
                Rectangle::new([(b.start_s, lo), (b.end_s, hi)], color.filled())
            }))
            .map_err(err)?
            .label(label)
            .legend(move |(px, py)| Rectangle::new([(px, py - 6), (px + 24, py + 6)], color.filled()));
    }
    let tick_style = BLACK.stroke_width(1);
    chart
        .draw_series(c.splits.iter().map(|t| PathElement::new([(*t, total * 1.02), (*t, total * 1.08)], tick_style)))
        .map_err(err)?
        .label("split decision")
        .legend(move |(px, py)| PathElement::new([(px + 12, py - 6), (px + 12, py + 6)], tick_style));
    legend(&mut chart, SeriesLabelPosition::UpperRight)
}

#[cfg(test)]
mod tests;
