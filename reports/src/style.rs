//! Colours and the embedded font.
//!
//! The palette is Okabe and Ito's colour-blind-safe set (Okabe & Ito, "Color Universal Design", 2008), without
//! its yellow (too faint on white). [`ColorMap`] gives every label one colour (and, past the palette, a marker
//! shape) for a whole report, so a policy has the same colour in every figure.

use std::sync::OnceLock;

use plotters::style::{FontStyle, RGBColor};

/// The embedded font (DejaVu Sans 2.37; licence in `assets/LICENSE-DejaVu.txt`).
pub(crate) const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Family name the figures use.
pub const FONT_FAMILY: &str = "sans-serif";

/// Registers the embedded font with plotters (once per process). Every figure calls this first.
pub fn ensure_font() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            // The bytes are a valid TrueType font compiled into the binary; a failure is a build defect.
            plotters::style::register_font(FONT_FAMILY, style, FONT).unwrap_or_else(|_| panic!("embedded font"));
        }
    });
}

/// Okabe-Ito colours in the order they are handed out: blue, vermillion, bluish green, orange, reddish purple,
/// sky blue, black.
pub const PALETTE: [RGBColor; 7] = [
    RGBColor(0x00, 0x72, 0xB2),
    RGBColor(0xD5, 0x5E, 0x00),
    RGBColor(0x00, 0x9E, 0x73),
    RGBColor(0xE6, 0x9F, 0x00),
    RGBColor(0xCC, 0x79, 0xA7),
    RGBColor(0x56, 0xB4, 0xE9),
    RGBColor(0x00, 0x00, 0x00),
];

/// Marker shapes, cycled once the palette is exhausted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// Filled circle.
    Circle,
    /// Filled triangle.
    Triangle,
    /// Cross.
    Cross,
}

/// Colour and marker of one label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesStyle {
    /// Line and marker colour.
    pub color: RGBColor,
    /// Marker shape.
    pub marker: Marker,
}

/// Fixed label -> style assignment, in the order labels were first given.
#[derive(Debug, Clone, Default)]
pub struct ColorMap {
    labels: Vec<String>,
}

impl ColorMap {
    /// A map over `labels` (duplicates ignored, order kept).
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(labels: I) -> Self {
        let mut m = Self::default();
        for l in labels {
            let l = l.into();
            if !m.labels.contains(&l) {
                m.labels.push(l);
            }
        }
        m
    }

    /// Style of `label`; a label the map has not seen gets the next free slot's style.
    pub fn style(&self, label: &str) -> SeriesStyle {
        let i = self.labels.iter().position(|l| l == label).unwrap_or(self.labels.len());
        let marker = match (i / PALETTE.len()) % 3 {
            0 => Marker::Circle,
            1 => Marker::Triangle,
            _ => Marker::Cross,
        };
        SeriesStyle { color: PALETTE[i % PALETTE.len()], marker }
    }

    /// Labels in order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_keep_their_style_and_styles_differ_until_the_palette_and_markers_run_out() {
        let names: Vec<String> = (0..PALETTE.len() * 3).map(|i| format!("p{i}")).collect();
        let m = ColorMap::new(names.iter().cloned().chain(["p0".to_string()]));
        assert_eq!(m.labels().len(), names.len());
        let styles: Vec<SeriesStyle> = names.iter().map(|n| m.style(n)).collect();
        for (i, a) in styles.iter().enumerate() {
            for b in &styles[i + 1..] {
                assert_ne!(a, b, "two labels share a style");
            }
        }
        assert_eq!(m.style("p3"), ColorMap::new(names.clone()).style("p3"));
    }

    #[test]
    fn the_embedded_font_registers() {
        ensure_font();
        ensure_font();
    }
}
