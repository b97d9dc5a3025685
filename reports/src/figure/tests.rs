//! Figures drawn to files and checked.

use super::*;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("duet-fig-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[1..4], b"PNG", "{} is not a PNG", path.display());
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (be(16), be(20))
}

#[test]
fn every_kind_renders_png_and_svg_with_text() {
    let dir = tmp("kinds");
    let colors = ColorMap::new(["chunked", "duet"]);
    let line = |label: &str, k: f64| Line {
        label: label.into(),
        points: (1..=5).map(|r| (f64::from(r), k * f64::from(r))).collect(),
        band: vec![],
    };
    let figs = [
        Figure::Line(LineChart {
            title: "P99 TBT vs rate".into(),
            x_label: "request rate (req/s)".into(),
            y_label: "P99 TBT (ms)".into(),
            lines: vec![line("chunked", 30.0), line("duet", 20.0)],
            limit: Some(Limit { label: "SLO 100 ms".into(), value: 100.0 }),
            log_y: true,
        }),
        Figure::Cdf(CdfChart {
            title: "TTFT CDF".into(),
            x_label: "TTFT (ms)".into(),
            series: vec![("chunked".into(), vec![10.0, 20.0, 300.0]), ("duet".into(), vec![5.0, 8.0])],
            limit: None,
        }),
        Figure::Scatter(ScatterChart {
            title: "cost model".into(),
            quantity: "time (ms)".into(),
            groups: vec![("linear".into(), vec![(1.0, 1.1), (2.0, 1.9)])],
            band: 0.1,
        }),
        Figure::Timeline(TimelineChart {
            title: "partitions".into(),
            total_sms: 132,
            blocks: vec![
                Block { start_s: 0.0, end_s: 1.0, lane: Lane::Whole, sms: 132 },
                Block { start_s: 1.0, end_s: 2.0, lane: Lane::Prefill, sms: 100 },
                Block { start_s: 1.0, end_s: 1.5, lane: Lane::Decode, sms: 32 },
            ],
            splits: vec![1.0],
        }),
        Figure::Bar(BarChart {
            title: "capacity per cell".into(),
            y_label: "capacity (req/s)".into(),
            categories: vec!["conv 8B".into(), "conv 14B".into()],
            series: vec![("chunked".into(), vec![Some(14.5), None]), ("duet".into(), vec![Some(15.2), Some(8.8)])],
            limit: None,
        }),
    ];
    for (i, f) in figs.iter().enumerate() {
        let paths = f.render(&colors, &dir.join(format!("f{i}"))).unwrap();
        assert_eq!(png_size(&paths[0]), SIZE);
        let svg = std::fs::read_to_string(&paths[1]).unwrap();
        assert!(svg.contains("<text") && svg.contains(f.title()), "title missing from {}", paths[1].display());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cdf_steps_are_exact_when_small_and_thinned_when_large() {
    assert_eq!(cdf_steps(&[1.0, 2.0], 10), [(1.0, 0.0), (1.0, 0.5), (2.0, 0.5), (2.0, 1.0)]);
    let v: Vec<f64> = (1..=10_000).map(f64::from).collect();
    let pts = cdf_steps(&v, 100);
    assert_eq!(pts.len(), 2 * 101);
    assert_eq!(*pts.last().unwrap(), (10_000.0, 1.0));
    // Every drawn step sits on the exact empirical CDF: F(v_i) = (i + 1) / n.
    for w in pts.chunks(2) {
        assert!((w[1].1 - w[1].0 / 10_000.0).abs() < 1e-12);
    }
}

#[test]
fn tick_labels_are_short() {
    let t = |v: f64| tick(&v);
    assert_eq!(
        [t(4.0), t(2.5), t(0.125), t(1200.0), t(0.0), t(1e6), t(33.333)],
        ["4", "2.5", "0.125", "1200", "0", "1e6", "33.33"]
    );
}

#[test]
fn an_empty_figure_is_an_error_naming_it() {
    let f = Figure::Cdf(CdfChart { title: "TBT CDF".into(), x_label: "ms".into(), series: vec![], limit: None });
    let e = f.render(&ColorMap::default(), &tmp("empty").join("x")).unwrap_err().to_string();
    assert!(e.contains("TBT CDF"), "{e}");
}

#[test]
fn bar_categories_label_the_integer_ticks_and_missing_values_leave_gaps() {
    let dir = tmp("bars");
    let chart = BarChart {
        title: "capacity".into(),
        y_label: "req/s".into(),
        categories: vec!["conv 8B".into(), "code 14B".into(), "Mooncake 8B".into()],
        series: vec![("adaptive".into(), vec![Some(16.6), Some(0.48), None])],
        limit: Some(Limit { label: "best baseline".into(), value: 16.0 }),
    };
    let paths = Figure::Bar(chart.clone()).render(&ColorMap::default(), &dir.join("b")).unwrap();
    let svg = std::fs::read_to_string(&paths[1]).unwrap();
    for c in &chart.categories {
        assert!(svg.contains(c.as_str()), "category {c} not drawn");
    }
    assert!(svg.contains("best baseline"), "limit not in the legend");
    // One rectangle per present value: filling the missing one adds exactly one.
    let rects = |p: &PathBuf| std::fs::read_to_string(p).unwrap().matches("<rect").count();
    let full = BarChart { series: vec![("adaptive".into(), vec![Some(16.6), Some(0.48), Some(1.7)])], ..chart.clone() };
    let full_paths = Figure::Bar(full).render(&ColorMap::default(), &dir.join("f")).unwrap();
    assert_eq!(rects(&full_paths[1]), rects(&paths[1]) + 1);
    let none = Figure::Bar(BarChart { series: vec![("adaptive".into(), vec![None, None, None])], ..chart })
        .render(&ColorMap::default(), &dir.join("n"))
        .unwrap_err()
        .to_string();
    assert!(none.contains("capacity"), "{none}");
    std::fs::remove_dir_all(&dir).unwrap();
}
