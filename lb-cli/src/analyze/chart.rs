//! The charts of `lbctl analyze`, drawn with `plotters` into a PNG (bitmap backend)
//! and an SVG of the same picture, 1000 × 560 px. Text uses DejaVu Sans, embedded in
//! the binary (crate `dejavu`), so a machine without fonts draws the same picture.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::chart::MeshStyle;
use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::AnalyzeError;

/// Width and height of every chart, pixels.
pub const SIZE: (u32, u32) = (1000, 560);

const BAR: RGBColor = RGBColor(9, 105, 218);
const IDEAL: RGBColor = RGBColor(31, 35, 40);
const FAILED: RGBColor = RGBColor(207, 34, 46);
const MARK: RGBColor = RGBColor(130, 80, 223);
/// Line colours of the replicas of a timeline (red is kept for failures).
const SERIES: [RGBColor; 6] = [
    RGBColor(9, 105, 218),
    RGBColor(26, 127, 55),
    RGBColor(191, 135, 0),
    RGBColor(0, 150, 160),
    RGBColor(110, 84, 148),
    RGBColor(130, 130, 130),
];

/// Something that can draw itself on any plotters backend.
pub trait Chart {
    /// Draws on `root` (already filled white).
    ///
    /// # Errors
    /// A plotters error, as text.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), AnalyzeError>;

    /// Width and height, pixels.
    fn size(&self) -> (u32, u32) {
        SIZE
    }
}

/// Writes `<dir>/<stem>.png` and `<dir>/<stem>.svg`; returns both paths.
///
/// # Errors
/// The directory or files cannot be written, or plotters fails.
pub fn save(chart: &impl Chart, dir: &Path, stem: &str) -> Result<Vec<PathBuf>, AnalyzeError> {
    fonts()?;
    std::fs::create_dir_all(dir).map_err(|e| AnalyzeError::Write {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    let png = dir.join(format!("{stem}.png"));
    let svg = dir.join(format!("{stem}.svg"));
    {
        let root = BitMapBackend::new(&png, chart.size()).into_drawing_area();
        root.fill(&WHITE).map_err(text)?;
        chart.draw(&root)?;
        root.present().map_err(|e| AnalyzeError::Write {
            path: png.clone(),
            reason: e.to_string(),
        })?;
    }
    {
        let root = SVGBackend::new(&svg, chart.size()).into_drawing_area();
        root.fill(&WHITE).map_err(text)?;
        chart.draw(&root)?;
        root.present().map_err(|e| AnalyzeError::Write {
            path: svg.clone(),
            reason: e.to_string(),
        })?;
    }
    Ok(vec![png, svg])
}

/// Registers the embedded DejaVu Sans as plotters' `sans-serif` (once).
fn fonts() -> Result<(), AnalyzeError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let loaded = REGISTERED.get_or_init(|| {
        [
            (FontStyle::Normal, dejavu::sans::regular()),
            (FontStyle::Bold, dejavu::sans::bold()),
        ]
        .into_iter()
        .all(|(style, bytes)| plotters::style::register_font("sans-serif", style, bytes).is_ok())
    });
    if *loaded {
        Ok(())
    } else {
        Err(AnalyzeError::Font)
    }
}

fn text(e: impl std::fmt::Display) -> AnalyzeError {
    AnalyzeError::Draw(e.to_string())
}

/// A chart's plotting context over the axes that `X` and `Y` describe.
type Plot<'a, DB, X, Y> = ChartContext<
    'a,
    DB,
    Cartesian2d<<X as AsRangedCoord>::CoordDescType, <Y as AsRangedCoord>::CoordDescType>,
>;

/// The frame every chart starts from: `title` above, 16 px of margin, label areas
/// of `(x, y)` px, and the axes' ranges.
fn frame<'a, DB: DrawingBackend, X: AsRangedCoord, Y: AsRangedCoord>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
    (x_area, y_area): (u32, u32),
    x: X,
    y: Y,
) -> Result<Plot<'a, DB, X, Y>, AnalyzeError> {
    ChartBuilder::on(root)
        .caption(title, ("sans-serif", 20).into_font())
        .margin(16)
        .x_label_area_size(x_area)
        .y_label_area_size(y_area)
        .build_cartesian_2d(x, y)
        .map_err(text)
}

/// Draws `mesh` with the fonts of every chart's tick labels and axis names.
fn draw_mesh<X, Y, DB>(mesh: &mut MeshStyle<'_, '_, X, Y, DB>) -> Result<(), AnalyzeError>
where
    X: Ranged + ValueFormatter<X::ValueType>,
    Y: Ranged + ValueFormatter<Y::ValueType>,
    DB: DrawingBackend,
{
    mesh.label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .draw()
        .map_err(text)
}

/// Draws the legend of the series labelled so far, in a box at `position`.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<(), AnalyzeError> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(text)
}

/// A bar per label, the value written on top, and an optional horizontal line at
/// `ideal` (the even share).
#[derive(Debug, Clone)]
pub struct Bars {
    /// Above the plot.
    pub title: String,
    /// Y axis description.
    pub y_desc: String,
    /// `(label, value)` per bar, left to right.
    pub bars: Vec<(String, f64)>,
    /// Written on top of each bar, from its value.
    pub label: fn(f64, f64) -> String,
    /// The dashed line's height and legend, if any.
    pub ideal: Option<(f64, String)>,
}

impl Chart for Bars {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), AnalyzeError> {
        let n = self.bars.len().max(1);
        let width = root.dim_in_pixel().0.max(1);
        let total: f64 = self.bars.iter().map(|(_, v)| v).sum();
        let top = self
            .bars
            .iter()
            .map(|(_, v)| *v)
            .chain(self.ideal.as_ref().map(|(v, _)| *v))
            .fold(0.0, f64::max)
            * 1.18;
        let mut chart = frame(
            root,
            &self.title,
            (36, 72),
            (0..n - 1).into_segmented(),
            0.0..top.max(1.0),
        )?;
        let names: Vec<String> = self.bars.iter().map(|(l, _)| l.clone()).collect();
        draw_mesh(
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(n + 1)
                .x_label_formatter(&|v| match v {
                    SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
                    _ => String::new(),
                })
                .y_desc(&self.y_desc)
                .y_label_formatter(&|v| format!("{v:.0}")),
        )?;
        chart
            .draw_series(self.bars.iter().enumerate().map(|(i, (_, v))| {
                let mut bar = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (SegmentValue::Exact(i + 1), *v),
                    ],
                    BAR.mix(0.85).filled(),
                );
                let gap = (width / (n as u32 * 6)).min(60);
                bar.set_margin(0, 0, gap, gap);
                bar
            }))
            .map_err(text)?;
        // Values inside the bars, clear of the even-share line near their tops; above
        // a bar too short to hold them.
        let inside = TextStyle::from(("sans-serif", 15).into_font())
            .color(&WHITE)
            .pos(Pos::new(HPos::Center, VPos::Center));
        let above = TextStyle::from(("sans-serif", 15).into_font())
            .color(&IDEAL)
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        chart
            .draw_series(self.bars.iter().enumerate().map(|(i, (_, v))| {
                let (y, style) = if *v < top * 0.12 {
                    (*v + top * 0.01, above.clone())
                } else {
                    (*v / 2.0, inside.clone())
                };
                Text::new(
                    (self.label)(*v, total),
                    (SegmentValue::CenterOf(i), y),
                    style,
                )
            }))
            .map_err(text)?;
        if let Some((ideal, legend)) = &self.ideal {
            chart
                .draw_series(DashedLineSeries::new(
                    [
                        (SegmentValue::Exact(0), *ideal),
                        (SegmentValue::Exact(n), *ideal),
                    ],
                    8,
                    5,
                    IDEAL.stroke_width(2),
                ))
                .map_err(text)?
                .label(legend.clone())
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], IDEAL.stroke_width(2)));
            draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        }
        Ok(())
    }
}

/// Several [`Bars`] under one title, two per row.
#[derive(Debug, Clone)]
pub struct Panels {
    /// Above all panels.
    pub title: String,
    /// One chart per panel, left to right.
    pub panels: Vec<Bars>,
}

impl Chart for Panels {
    fn size(&self) -> (u32, u32) {
        (1200, 420 * self.panels.len().div_ceil(2).max(1) as u32 + 40)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), AnalyzeError> {
        let area = root
            .titled(&self.title, ("sans-serif", 22).into_font())
            .map_err(text)?;
        let columns = 2;
        let rows = self.panels.len().div_ceil(columns).max(1);
        let cells = area.split_evenly((rows, columns));
        for (panel, cell) in self.panels.iter().zip(&cells) {
            panel.draw(cell)?;
        }
        Ok(())
    }
}

/// Requests per replica as N grows: the mean (line) and min–max (error bars), with
/// the max/mean ratio written at each N.
#[derive(Debug, Clone)]
pub struct Spread {
    /// Above the plot.
    pub title: String,
    /// `(N, min, mean, max)` per N.
    pub points: Vec<(usize, f64, f64, f64)>,
}

impl Chart for Spread {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), AnalyzeError> {
        let first = self.points.first().map_or(1, |p| p.0);
        let last = self.points.last().map_or(first, |p| p.0);
        let top = self.points.iter().map(|p| p.3).fold(0.0, f64::max) * 1.15;
        let mut chart = frame(
            root,
            &self.title,
            (40, 72),
            (first.saturating_sub(1)..last + 1).into_segmented(),
            0.0..top.max(1.0),
        )?;
        draw_mesh(
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_label_formatter(&|v: &SegmentValue<usize>| match v {
                    SegmentValue::CenterOf(i) if (first..=last).contains(i) => format!("N = {i}"),
                    _ => String::new(),
                })
                .y_desc("requests per replica")
                .y_label_formatter(&|v| format!("{v:.0}")),
        )?;
        let at = |n: usize| SegmentValue::CenterOf(n);
        chart
            .draw_series(LineSeries::new(
                self.points.iter().map(|p| (at(p.0), p.2)),
                BAR.stroke_width(3),
            ))
            .map_err(text)?
            .label("mean (requests / N)")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BAR.stroke_width(3)));
        chart
            .draw_series(
                self.points.iter().map(|p| {
                    ErrorBar::new_vertical(at(p.0), p.1, p.2, p.3, IDEAL.stroke_width(2), 16)
                }),
            )
            .map_err(text)?
            .label("min – max over replicas")
            .legend(|(x, y)| PathElement::new([(x + 10, y - 6), (x + 10, y + 6)], IDEAL));
        let style = TextStyle::from(("sans-serif", 14).into_font())
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        chart
            .draw_series(self.points.iter().map(|p| {
                Text::new(
                    format!("max/mean {:.3}", p.3 / p.2.max(1e-9)),
                    (at(p.0), p.3 + top * 0.02),
                    style.clone(),
                )
            }))
            .map_err(text)?;
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    }
}

/// Requests per second per replica over time, failed requests per second, and
/// labelled vertical marks (the kill, the replica serving again).
#[derive(Debug, Clone)]
pub struct Timeline {
    /// Above the plot.
    pub title: String,
    /// Length of the x axis, seconds.
    pub seconds: f64,
    /// `(replica, [(t seconds, requests per second)])`.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// `[(t seconds, failed requests per second)]`.
    pub failed: Vec<(f64, f64)>,
    /// `(t seconds, label)`.
    pub marks: Vec<(f64, String)>,
}

impl Chart for Timeline {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), AnalyzeError> {
        let top = self
            .series
            .iter()
            .flat_map(|(_, points)| points.iter().map(|p| p.1))
            .chain(self.failed.iter().map(|p| p.1))
            .fold(0.0, f64::max)
            * 1.25;
        let mut chart = frame(
            root,
            &self.title,
            (40, 64),
            0.0..self.seconds,
            0.0..top.max(1.0),
        )?;
        draw_mesh(
            chart
                .configure_mesh()
                .x_desc("seconds")
                .y_desc("requests per second")
                .y_label_formatter(&|v| format!("{v:.0}")),
        )?;
        for (i, (name, points)) in self.series.iter().enumerate() {
            let color = SERIES[i % SERIES.len()];
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(text)?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .draw_series(LineSeries::new(
                self.failed.iter().copied(),
                FAILED.stroke_width(2),
            ))
            .map_err(text)?
            .label("failed (non-2xx or no answer)")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], FAILED.stroke_width(2)));
        let style = TextStyle::from(("sans-serif", 14).into_font()).color(&MARK);
        for (i, (t, label)) in self.marks.iter().enumerate() {
            chart
                .draw_series(DashedLineSeries::new(
                    [(*t, 0.0), (*t, top)],
                    6,
                    4,
                    MARK.stroke_width(2),
                ))
                .map_err(text)?;
            let y = top * (0.97 - 0.06 * i as f64);
            chart
                .draw_series(std::iter::once(Text::new(
                    label.clone(),
                    (*t + self.seconds * 0.008, y),
                    style.clone(),
                )))
                .map_err(text)?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        Ok(())
    }
}
