//! Figures of a report with plotters, each written as SVG and PNG: bootstrap distributions,
//! per-seed estimates against the procedure interval, and learning curves over steps.
//! Sized for a paper column (800 × 500 px PNG; the SVG scales) with 18–22 px text.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;

use mb_stats_files::error::{Error, Result};

const SIZE: (u32, u32) = (800, 500);
const FONT: &str = "sans-serif";
/// Colours of the series, colour-blind safe (Okabe–Ito).
const COLOURS: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
];

/// The colour of series `i`.
fn colour(i: usize) -> RGBColor {
    COLOURS[i % COLOURS.len()]
}

/// A figure that draws itself on any plotters backend.
pub trait Figure {
    /// Draws the figure on `area`.
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> std::result::Result<(), String>;
}

/// Registers the bundled DejaVu Sans for the PNG backend (the SVG names the family only).
fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let font: &'static [u8] = include_bytes!("../../assets/DejaVuSans.ttf");
        // The font is bundled and valid; a failure would only lose PNG text.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, font);
    });
}

/// Writes `figure` to `stem.svg` and `stem.png` (each through a temporary file, then renamed).
/// Returns the two paths.
pub fn save(figure: &impl Figure, stem: &Path) -> Result<(PathBuf, PathBuf)> {
    register_font();
    let (svg, png) = (stem.with_extension("svg"), stem.with_extension("png"));
    let fail = |path: &Path, e: String| Error::Output(format!("{}: cannot draw: {e}", path.display()));
    let temp = |path: &Path| {
        path.with_extension(format!(
            "tmp.{}",
            path.extension().and_then(|e| e.to_str()).unwrap_or("")
        ))
    };
    let (svg_temp, png_temp) = (temp(&svg), temp(&png));
    let drawn = (|| {
        {
            let area = SVGBackend::new(&svg_temp, SIZE).into_drawing_area();
            figure
                .draw(&area)
                .and_then(|_| area.present().map_err(|e| e.to_string()))
                .map_err(|e| fail(&svg, e))?;
        }
        {
            let area = BitMapBackend::new(&png_temp, SIZE).into_drawing_area();
            figure
                .draw(&area)
                .and_then(|_| area.present().map_err(|e| e.to_string()))
                .map_err(|e| fail(&png, e))?;
        }
        for path in [&svg, &png] {
            std::fs::rename(temp(path), path).map_err(|e| fail(path, e.to_string()))?;
        }
        Ok(())
    })();
    if drawn.is_err() {
        // No temporary file outlives an error (a full disk, a missing folder).
        let _ = std::fs::remove_file(&svg_temp);
        let _ = std::fs::remove_file(&png_temp);
    }
    drawn.map(|()| (svg, png))
}

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

/// The legend every figure draws: framed, semi-transparent, at `position`.
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> std::result::Result<(), String> {
    chart
        .configure_series_labels()
        .label_font((FONT, 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(position)
        .draw()
        .map_err(err)
}

/// Gaussian kernel density of `values` on `points` grid points over `range` (Silverman's
/// bandwidth). Time: O(values × points).
pub fn density(values: &[f64], range: (f64, f64), points: usize) -> Vec<(f64, f64)> {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let iqr = mb_stats_core::summary::quantile(&sorted, 0.75) - mb_stats_core::summary::quantile(&sorted, 0.25);
    let spread = if iqr > 0.0 { sd.min(iqr / 1.34) } else { sd };
    let h = (0.9 * spread * n.powf(-0.2))
        .max((range.1 - range.0) * 1e-3)
        .max(f64::MIN_POSITIVE);
    let norm = 1.0 / (n * h * (2.0 * std::f64::consts::PI).sqrt());
    (0..points)
        .map(|i| {
            let x = range.0 + (range.1 - range.0) * i as f64 / (points - 1) as f64;
            let y = values.iter().map(|v| (-0.5 * ((x - v) / h).powi(2)).exp()).sum::<f64>() * norm;
            (x, y)
        })
        .collect()
}

fn padded_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let pad = ((hi - lo) * 0.08).max(lo.abs().max(hi.abs()) * 1e-3).max(1e-9);
    (lo - pad, hi + pad)
}

/// Bootstrap distributions: the procedures' replicates overlaid on the left, δ on the right
/// (with 0 marked and its interval shaded) when there is a comparison.
pub struct Distributions {
    /// Figure title.
    pub title: String,
    /// Axis label of the metric (with unit).
    pub metric_label: String,
    /// (name, replicates) of each procedure.
    pub sides: Vec<(String, Vec<f64>)>,
    /// δ replicates and its interval, for a comparison.
    pub delta: Option<(Vec<f64>, (f64, f64))>,
}

impl Figure for Distributions {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> std::result::Result<(), String> {
        area.fill(&WHITE).map_err(err)?;
        let area = area.titled(&self.title, (FONT, 22)).map_err(err)?;
        let (left, right) = match self.delta {
            Some(_) => area.split_horizontally(SIZE.0 / 2),
            None => (area.clone(), area.clone()),
        };
        let range = padded_range(self.sides.iter().flat_map(|(_, v)| v.iter().copied()));
        let curves: Vec<Vec<(f64, f64)>> = self.sides.iter().map(|(_, v)| density(v, range, 200)).collect();
        let top = curves.iter().flatten().map(|p| p.1).fold(0.0, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(&left)
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(range.0..range.1, 0.0..top.max(1e-9))
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(&self.metric_label)
            .y_desc("bootstrap density")
            .x_labels(5)
            .y_labels(5)
            .label_style((FONT, 16))
            .axis_desc_style((FONT, 18))
            .disable_mesh()
            .draw()
            .map_err(err)?;
        for (i, ((name, _), curve)) in self.sides.iter().zip(&curves).enumerate() {
            let c = colour(i);
            chart
                .draw_series(AreaSeries::new(curve.iter().copied(), 0.0, c.mix(0.25)).border_style(c.stroke_width(2)))
                .map_err(err)?
                .label(name.as_str())
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 18, y + 6)], c.filled()));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        if let Some((deltas, (low, high))) = &self.delta {
            let range = padded_range(deltas.iter().copied().chain([0.0]));
            let curve = density(deltas, range, 200);
            let top = curve.iter().map(|p| p.1).fold(0.0, f64::max) * 1.1;
            let mut chart = ChartBuilder::on(&right)
                .margin(12)
                .x_label_area_size(50)
                .y_label_area_size(60)
                .build_cartesian_2d(range.0..range.1, 0.0..top.max(1e-9))
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc(format!("δ = treatment − base ({})", self.metric_label))
                .y_desc("bootstrap density")
                .x_labels(5)
                .y_labels(5)
                .label_style((FONT, 16))
                .axis_desc_style((FONT, 18))
                .disable_mesh()
                .draw()
                .map_err(err)?;
            let inside: Vec<(f64, f64)> = curve
                .iter()
                .copied()
                .filter(|(x, _)| (*low..=*high).contains(x))
                .collect();
            chart
                .draw_series(AreaSeries::new(inside, 0.0, colour(2).mix(0.3)))
                .map_err(err)?;
            chart
                .draw_series(LineSeries::new(curve, colour(2).stroke_width(2)))
                .map_err(err)?;
            chart
                .draw_series(LineSeries::new([(0.0, 0.0), (0.0, top)], BLACK.stroke_width(1)))
                .map_err(err)?;
        }
        Ok(())
    }
}

/// An estimate with its interval at a position on the x axis (a seed, a step).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point<X> {
    /// Position.
    pub at: X,
    /// Point estimate.
    pub estimate: f64,
    /// Lower end of the interval.
    pub low: f64,
    /// Upper end of the interval.
    pub high: f64,
}

/// One group's points, with the procedure-level estimate when it is drawn as a band.
#[derive(Clone, Debug, PartialEq)]
pub struct Series<X> {
    /// Group name (legend).
    pub name: String,
    /// The procedure's estimate and interval.
    pub procedure: Option<Point<()>>,
    /// The points, in x order.
    pub points: Vec<Point<X>>,
}

/// Per-seed estimates with examples-only intervals, against each procedure's interval (band)
/// and estimate (line).
pub struct Seeds {
    /// Figure title.
    pub title: String,
    /// Axis label of the metric (with unit).
    pub metric_label: String,
    /// Per group: the seeds' points and the procedure's interval.
    pub groups: Vec<Series<i64>>,
}

impl Figure for Seeds {
    /// (Long: one chart from axes to legend; plotters' builder calls read in drawing order.)
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> std::result::Result<(), String> {
        area.fill(&WHITE).map_err(err)?;
        let area = area.titled(&self.title, (FONT, 22)).map_err(err)?;
        let mut seeds: Vec<i64> = self.groups.iter().flat_map(|g| g.points.iter().map(|p| p.at)).collect();
        seeds.sort_unstable();
        seeds.dedup();
        let values = self.groups.iter().flat_map(|g| {
            g.points
                .iter()
                .flat_map(|p| [p.low, p.high])
                .chain(g.procedure.iter().flat_map(|p| [p.low, p.high]))
        });
        let (lo, hi) = padded_range(values);
        let n = seeds.len() as f64;
        let mut chart = ChartBuilder::on(&area)
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.6..n - 0.4, lo..hi)
            .map_err(err)?;
        let labels = seeds.clone();
        chart
            .configure_mesh()
            .x_desc("pretraining seed")
            .y_desc(&self.metric_label)
            .x_labels(seeds.len().min(30))
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    labels.get(i as usize).map_or(String::new(), |s| s.to_string())
                } else {
                    String::new()
                }
            })
            .y_labels(6)
            .label_style((FONT, 16))
            .axis_desc_style((FONT, 18))
            .disable_x_mesh()
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        let k = self.groups.len() as f64;
        for (
            g,
            Series {
                name,
                procedure,
                points,
            },
        ) in self.groups.iter().enumerate()
        {
            let c = colour(g);
            if let Some(Point {
                estimate, low, high, ..
            }) = *procedure
            {
                chart
                    .draw_series([Rectangle::new([(-0.6, low), (n - 0.4, high)], c.mix(0.15).filled())])
                    .map_err(err)?;
                chart
                    .draw_series(LineSeries::new(
                        [(-0.6, estimate), (n - 0.4, estimate)],
                        c.stroke_width(2),
                    ))
                    .map_err(err)?;
            }
            let offset = if k > 1.0 {
                (g as f64 - (k - 1.0) / 2.0) * 0.25
            } else {
                0.0
            };
            let x = |seed: i64| seeds.iter().position(|&s| s == seed).unwrap_or(0) as f64 + offset;
            chart
                .draw_series(
                    points
                        .iter()
                        .map(|p| ErrorBar::new_vertical(x(p.at), p.low, p.estimate, p.high, c.stroke_width(2), 8)),
                )
                .map_err(err)?
                .label(name.as_str())
                .legend(move |(x, y)| Circle::new((x + 9, y), 5, c.filled()));
            chart
                .draw_series(points.iter().map(|p| Circle::new((x(p.at), p.estimate), 4, c.filled())))
                .map_err(err)?;
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        Ok(())
    }
}

/// A forest plot: per subtask (BLiMP paradigm) of one field, each group's estimate with its
/// interval, subtasks down the side.
pub struct Subtasks {
    /// Figure title.
    pub title: String,
    /// Axis label of the metric (with unit).
    pub metric_label: String,
    /// The subtasks, top to bottom.
    pub names: Vec<String>,
    /// Per group: one point per subtask (`at` = its index in `names`).
    pub groups: Vec<Series<usize>>,
}

impl Figure for Subtasks {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> std::result::Result<(), String> {
        area.fill(&WHITE).map_err(err)?;
        let area = area.titled(&self.title, (FONT, 22)).map_err(err)?;
        let values = self
            .groups
            .iter()
            .flat_map(|g| g.points.iter().flat_map(|p| [p.low, p.high]));
        let (lo, hi) = padded_range(values);
        let n = self.names.len() as f64;
        let longest = self.names.iter().map(|s| s.chars().count()).max().unwrap_or(0) as u32;
        let mut chart = ChartBuilder::on(&area)
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size((8 * longest + 16).min(480))
            .build_cartesian_2d(lo..hi, -0.6..n - 0.4)
            .map_err(err)?;
        let names = self.names.clone();
        chart
            .configure_mesh()
            .x_desc(&self.metric_label)
            .y_labels(self.names.len().min(40))
            .y_label_formatter(&|y| {
                let i = y.round();
                // Top to bottom: the first name is drawn highest.
                match (y - i).abs() < 1e-6 && i >= 0.0 {
                    true => names
                        .get(names.len().saturating_sub(1 + i as usize))
                        .cloned()
                        .unwrap_or_default(),
                    false => String::new(),
                }
            })
            .x_labels(6)
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 18))
            .disable_y_mesh()
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        let k = self.groups.len() as f64;
        for (g, Series { name, points, .. }) in self.groups.iter().enumerate() {
            let c = colour(g);
            let offset = if k > 1.0 {
                (g as f64 - (k - 1.0) / 2.0) * 0.25
            } else {
                0.0
            };
            let y = |at: usize| n - 1.0 - at as f64 - offset;
            chart
                .draw_series(
                    points
                        .iter()
                        .map(|p| ErrorBar::new_horizontal(y(p.at), p.low, p.estimate, p.high, c.stroke_width(2), 6)),
                )
                .map_err(err)?
                .label(name.as_str())
                .legend(move |(x, y)| Circle::new((x + 9, y), 5, c.filled()));
            chart
                .draw_series(points.iter().map(|p| Circle::new((p.estimate, y(p.at)), 4, c.filled())))
                .map_err(err)?;
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        Ok(())
    }
}

/// A learning curve: per group, the estimate over pretraining steps with its interval band.
pub struct Curve {
    /// Figure title.
    pub title: String,
    /// Axis label of the metric (with unit).
    pub metric_label: String,
    /// Log-scaled step axis (steps ≤ 0 are left out).
    pub log_steps: bool,
    /// Per group: the points at each step, in step order.
    pub groups: Vec<Series<f64>>,
    /// Per group: the simultaneous band at each point (empty: none).
    pub simultaneous: Vec<Vec<(f64, f64)>>,
}

impl Figure for Curve {
    /// (Long: one chart from axes to legend; plotters' builder calls read in drawing order.)
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> std::result::Result<(), String> {
        area.fill(&WHITE).map_err(err)?;
        let area = area.titled(&self.title, (FONT, 22)).map_err(err)?;
        // A log axis cannot show steps <= 0.
        let shown = |p: &&Point<f64>| !self.log_steps || p.at > 0.0;
        let all = || self.groups.iter().flat_map(|g| g.points.iter().filter(shown));
        let (x0, x1) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.at), b.max(p.at))
        });
        let band_ends = self.simultaneous.iter().flatten().flat_map(|b| [b.0, b.1]);
        let (y0, y1) = padded_range(all().flat_map(|p| [p.low, p.high]).chain(band_ends));
        let x_desc = if self.log_steps {
            "pretraining step (log scale)"
        } else {
            "pretraining step"
        };
        let step_label = |x: &f64| match *x {
            x if x >= 1e6 => format!("{}M", x / 1e6),
            x if x >= 1e3 => format!("{}k", x / 1e3),
            x => format!("{x}"),
        };
        macro_rules! draw_on {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc(x_desc)
                    .y_desc(&self.metric_label)
                    .x_label_formatter(&step_label)
                    .label_style((FONT, 16))
                    .axis_desc_style((FONT, 18))
                    .light_line_style(WHITE.mix(0.0))
                    .draw()
                    .map_err(err)?;
                for (g, series) in self.groups.iter().enumerate() {
                    let c = colour(g);
                    let pts: Vec<&Point<f64>> = series.points.iter().filter(shown).collect();
                    if let Some(outer) = self
                        .simultaneous
                        .get(g)
                        .filter(|b| b.len() == series.points.len())
                    {
                        let kept: Vec<(f64, (f64, f64))> = series
                            .points
                            .iter()
                            .zip(outer)
                            .filter(|(p, _)| shown(p))
                            .map(|(p, b)| (p.at, *b))
                            .collect();
                        let band: Vec<(f64, f64)> = kept
                            .iter()
                            .map(|(x, b)| (*x, b.1))
                            .chain(kept.iter().rev().map(|(x, b)| (*x, b.0)))
                            .collect();
                        chart
                            .draw_series([Polygon::new(band, c.mix(0.1).filled())])
                            .map_err(err)?;
                    }
                    let band: Vec<(f64, f64)> = pts
                        .iter()
                        .map(|p| (p.at, p.high))
                        .chain(pts.iter().rev().map(|p| (p.at, p.low)))
                        .collect();
                    chart
                        .draw_series([Polygon::new(band, c.mix(0.3).filled())])
                        .map_err(err)?;
                    chart
                        .draw_series(LineSeries::new(
                            pts.iter().map(|p| (p.at, p.estimate)),
                            c.stroke_width(2),
                        ))
                        .map_err(err)?
                        .label(series.name.as_str())
                        .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], c.stroke_width(3)));
                    chart
                        .draw_series(pts.iter().map(|p| Circle::new((p.at, p.estimate), 3, c.filled())))
                        .map_err(err)?;
                }
                legend(&mut chart, SeriesLabelPosition::LowerRight)?;
            }};
        }
        let builder = || {
            let mut b = ChartBuilder::on(&area);
            b.margin(16).x_label_area_size(50).y_label_area_size(70);
            b
        };
        if self.log_steps {
            draw_on!(
                builder()
                    .build_cartesian_2d((x0..x1).log_scale(), y0..y1)
                    .map_err(err)?
            );
        } else {
            let pad = (x1 - x0) * 0.02;
            draw_on!(builder().build_cartesian_2d(x0 - pad..x1 + pad, y0..y1).map_err(err)?);
        }
        Ok(())
    }
}

/// Power against the number of seeds, one line per example count, with the target level marked.
pub struct PowerPlot {
    /// Figure title.
    pub title: String,
    /// Per example count: (seeds, power) points.
    pub lines: Vec<(usize, Vec<(f64, f64)>)>,
}

impl Figure for PowerPlot {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> std::result::Result<(), String> {
        area.fill(&WHITE).map_err(err)?;
        let area = area.titled(&self.title, (FONT, 22)).map_err(err)?;
        let x1 = self
            .lines
            .iter()
            .flat_map(|l| l.1.iter().map(|p| p.0))
            .fold(1.0, f64::max);
        let mut chart = ChartBuilder::on(&area)
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..x1 * 1.05, 0.0..1.05)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("pretraining seeds per procedure")
            .y_desc("power")
            .label_style((FONT, 16))
            .axis_desc_style((FONT, 18))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                [(0.0, 0.8), (x1 * 1.05, 0.8)],
                BLACK.mix(0.4).stroke_width(1),
            ))
            .map_err(err)?;
        for (i, (examples, points)) in self.lines.iter().enumerate() {
            let c = colour(i);
            chart
                .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))
                .map_err(err)?
                .label(format!("N = {examples}"))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], c.stroke_width(3)));
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 4, c.filled())))
                .map_err(err)?;
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        Ok(())
    }
}
