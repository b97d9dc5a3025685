//! Grouped bar charts: one group of bars per category (e.g. a model, a cell), one bar per series (e.g. a policy),
//! with an optional dashed reference line; a missing value leaves its slot empty.

use super::{DrawResult, HouseStyle, Limit, err, frame, legend, tick};
use crate::style::ColorMap;
use plotters::coord::Shift;
use plotters::prelude::*;

/// Values per category and series (capacity per policy and model, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    /// Title.
    pub title: String,
    /// y-axis label with unit.
    pub y_label: String,
    /// Category names, left to right (x-axis labels).
    pub categories: Vec<String>,
    /// `(label, value per category)` per series; bars of a category appear in series order.
    pub series: Vec<(String, Vec<Option<f64>>)>,
    /// Horizontal reference line.
    pub limit: Option<Limit>,
}

impl BarChart {
    /// Whether no bar has a value.
    pub fn is_empty(&self) -> bool {
        self.series.iter().all(|(_, v)| v.iter().all(|x| x.is_none_or(|x| !x.is_finite())))
    }
}

/// Categories sit at the integers `0..n`; a category's bars share 80% of the unit around it.
pub(super) fn draw_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    c: &BarChart,
    colors: &ColorMap,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let n = c.categories.len();
    let top = c
        .series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten().copied())
        .chain(c.limit.iter().map(|l| l.value))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    // Headroom keeps the legend (upper right) clear of the bars.
    let y_top = if top > 0.0 { top * 1.45 } else { 1.0 };
    let x = -0.5..n as f64 - 0.5;
    let mut chart = frame(root, &c.title, 80).build_cartesian_2d(x, 0.0..y_top).map_err(err)?;
    let names = c.categories.clone();
    let category = move |v: &f64| {
        let i = v.round();
        if (v - i).abs() < 1e-6 && i >= 0.0 {
            names.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc(c.y_label.as_str())
        .house_style()
        .x_labels(n + 1)
        .x_label_formatter(&category)
        .y_label_formatter(&tick)
        .draw()
        .map_err(err)?;
    let k = c.series.len().max(1) as f64;
    let width = 0.8 / k;
    for (j, (label, values)) in c.series.iter().enumerate() {
        let color = colors.style(label).color;
        let left = |i: usize| i as f64 - 0.4 + j as f64 * width;
        chart
            .draw_series(values.iter().enumerate().filter_map(|(i, v)| {
                let v = v.filter(|v| v.is_finite())?;
                Some(Rectangle::new([(left(i), 0.0), (left(i) + width * 0.92, v)], color.filled()))
            }))
            .map_err(err)?
            .label(label.as_str())
            .legend(move |(px, py)| Rectangle::new([(px, py - 6), (px + 24, py + 6)], color.filled()));
    }
    if let Some(l) = &c.limit {
        let dashed = RGBColor(0x60, 0x60, 0x60).stroke_width(2);
        chart
            .draw_series(DashedLineSeries::new([(-0.5, l.value), (n as f64 - 0.5, l.value)], 8, 6, dashed))
            .map_err(err)?
            .label(l.label.as_str())
            .legend(move |(px, py)| PathElement::new([(px, py), (px + 24, py)], dashed));
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)
}
