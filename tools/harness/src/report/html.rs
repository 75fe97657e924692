//! The HTML report, made to answer three questions at a glance: did this
//! release get better, where, and what do I replay?
//!
//! - a release x family table coloured by demonstrated nines, with every
//!   release's gate verdict and must-pass results beside it;
//! - small multiples (plotters, SVG): one panel per family, the
//!   demonstrated nines per release, axes bounded to the data and shared by
//!   the panels so they compare;
//! - each release, newest first: its verdict, closed and open loop apart,
//!   the family table, and its failures grouped by family and category,
//!   the largest group first, each with the command that replays it.
//!
//! The body is well-formed XML (no unclosed tags, no named entities) so
//! tests parse it as such.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::{Figures, ReleaseReport, failure_groups, rate};
use crate::{HarnessError, Result};

/// The column of a release's closed-loop runs, all families together.
pub const CLOSED: &str = "closed loop";
/// The column of a release's open-loop runs, all drives together.
pub const OPEN: &str = "open loop";

/// One column of the table and one panel of the chart.
struct Column {
    name: String,
    /// What a release shows in the column.
    cell: fn(&ReleaseReport, &str) -> Cell,
}

/// What a release shows in one column.
enum Cell {
    /// Not in the release's suite.
    NotRun,
    /// Every run skipped.
    Skipped,
    /// Figures of the runs.
    Ran(Figures),
}

fn family_cell(r: &ReleaseReport, family: &str) -> Cell {
    match r.families.iter().find(|f| f.family == family) {
        None => Cell::NotRun,
        Some(f) if f.was_skipped() => Cell::Skipped,
        Some(f) => Cell::Ran(f.figures.clone()),
    }
}

fn closed_cell(r: &ReleaseReport, _: &str) -> Cell {
    if r.closed_loop.runs > 0 { Cell::Ran(r.closed_loop.clone()) } else { Cell::NotRun }
}

fn open_cell(r: &ReleaseReport, _: &str) -> Cell {
    if r.open_loop.runs > 0 {
        Cell::Ran(r.open_loop.clone())
    } else if r.families.iter().any(|f| f.kind == "open" && f.was_skipped()) {
        Cell::Skipped
    } else {
        Cell::NotRun
    }
}

/// Closed loop, each closed-loop family, each open-loop drive, open loop.
fn columns(reports: &[ReleaseReport]) -> Vec<Column> {
    let mut closed = BTreeSet::new();
    let mut open = BTreeSet::new();
    for f in reports.iter().flat_map(|r| &r.families) {
        if f.kind == "open" { &mut open } else { &mut closed }.insert(f.family.clone());
    }
    let mut cols = vec![Column { name: CLOSED.into(), cell: closed_cell }];
    cols.extend(closed.into_iter().map(|name| Column { name, cell: family_cell }));
    cols.extend(open.into_iter().map(|name| Column { name, cell: family_cell }));
    cols.push(Column { name: OPEN.into(), cell: open_cell });
    cols
}

impl Column {
    fn of(&self, r: &ReleaseReport) -> Cell {
        (self.cell)(r, &self.name)
    }
}

/// A background colour for `nines`: red at 0, yellow at 1, green from 3.
fn colour(nines: f64) -> String {
    let hue = (nines / 3.0).clamp(0.0, 1.0) * 120.0;
    format!("hsl({hue:.0},70%,82%)")
}

/// The top of the nines axis: the data's largest value (demonstrated or
/// observed, where finite), rounded up to a quarter nine, at least a half.
#[must_use]
pub fn axis_top(values: impl IntoIterator<Item = f64>) -> f64 {
    let max = values.into_iter().filter(|v| v.is_finite()).fold(0.0_f64, f64::max);
    ((max * 4.0).ceil() / 4.0).max(0.5)
}

/// The nines of the observed failure rate (`None` with no failure: unbounded).
fn observed_nines(f: &Figures) -> Option<f64> {
    (f.failures > 0 && f.runs > 0).then(|| -(f.failure_rate.log10()))
}

/// One panel: demonstrated nines per release (filled dots and a line), and
/// a thin bar up to the observed failure rate's nines (to the top when no
/// run failed).
fn panel_svg(title: &str, points: &[(usize, Figures)], releases: usize, top: f64) -> Result<String> {
    use plotters::prelude::*;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (250, 170)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let n = releases.max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 14))
            .margin(6)
            .x_label_area_size(22)
            .y_label_area_size(34)
            .build_cartesian_2d(-0.5..(n as f64 - 0.5), 0.0..top)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .x_labels(n.min(12))
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 { format!("{}", i as usize + 1) } else { String::new() }
            })
            .y_labels(5)
            .y_label_formatter(&|y| format!("{y:.2}"))
            .light_line_style(WHITE)
            .draw()
            .map_err(chart_error)?;
        let grey = RGBColor(150, 150, 150);
        for (i, f) in points {
            let up = observed_nines(f).map_or(top, |o| o.min(top));
            chart
                .draw_series(std::iter::once(PathElement::new(
                    [(*i as f64, f.nines.min(top)), (*i as f64, up)],
                    grey.stroke_width(2),
                )))
                .map_err(chart_error)?;
        }
        let line: Vec<(f64, f64)> = points.iter().map(|(i, f)| (*i as f64, f.nines.min(top))).collect();
        chart
            .draw_series(LineSeries::new(line.iter().copied(), BLUE.stroke_width(2)))
            .map_err(chart_error)?;
        chart.draw_series(line.iter().map(|&p| Circle::new(p, 4, BLUE.filled()))).map_err(chart_error)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// The small multiples: one SVG panel per column, each in a `<figure
/// data-family="...">`, sharing one bounded y axis.
pub fn chart_svg(reports: &[ReleaseReport]) -> Result<String> {
    let cols = columns(reports);
    let ran = |c: &Column| -> Vec<(usize, Figures)> {
        reports
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match c.of(r) {
                Cell::Ran(f) => Some((i, f)),
                _ => None,
            })
            .collect()
    };
    let top =
        axis_top(cols.iter().flat_map(&ran).flat_map(|(_, f)| [Some(f.nines), observed_nines(&f)]).flatten());
    let mut out = String::from("<div class=\"panels\">");
    for c in &cols {
        let points = ran(c);
        if points.is_empty() {
            continue;
        }
        let _ = write!(
            out,
            "<figure data-family=\"{}\" data-top=\"{top}\">{}</figure>",
            escape(&c.name),
            panel_svg(&c.name, &points, reports.len(), top)?
        );
    }
    out.push_str("</div>");
    Ok(out)
}

/// A plotters error, kept as the chart error's source.
fn chart_error<E: std::error::Error + Send + Sync + 'static>(e: E) -> HarnessError {
    HarnessError::Chart(Box::new(e))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The release x family table, coloured by demonstrated nines.
fn overview(out: &mut String, reports: &[ReleaseReport]) {
    let cols = columns(reports);
    out.push_str("<table id=\"by-family\"><tr><th>#</th><th>release</th><th>verdict</th><th>must pass</th>");
    for c in &cols {
        let _ = write!(out, "<th>{}</th>", escape(&c.name));
    }
    out.push_str("</tr>");
    for (i, r) in reports.iter().enumerate() {
        let verdict = match &r.gate {
            None => "<td>first</td>".to_string(),
            Some(g) if g.passed => {
                format!("<td class=\"pass\">PASS vs {} (p = {:.3})</td>", escape(&g.baseline), g.p_value)
            }
            Some(g) => {
                format!("<td class=\"fail\">FAIL vs {} (p = {:.3})</td>", escape(&g.baseline), g.p_value)
            }
        };
        let m = r.must_pass;
        let must = if m.runs == 0 {
            "<td>none</td>".to_string()
        } else {
            let class = if m.failures > 0 { "fail" } else { "pass" };
            format!("<td class=\"{class}\">{} of {}</td>", m.runs - m.failures, m.runs)
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td><a href=\"#release-{}\">{}</a></td>{verdict}{must}",
            i + 1,
            escape(&r.release),
            escape(&r.release)
        );
        for c in &cols {
            let attrs =
                format!("data-release=\"{}\" data-family=\"{}\"", escape(&r.release), escape(&c.name));
            match c.of(r) {
                Cell::NotRun => {
                    let _ = write!(out, "<td {attrs} class=\"na\">-</td>");
                }
                Cell::Skipped => {
                    let _ = write!(out, "<td {attrs} class=\"skipped\">skipped</td>");
                }
                Cell::Ran(f) => {
                    let _ = write!(
                        out,
                        "<td {attrs} style=\"background:{}\"><b>{:.2}</b><br/><small>{} of {} failed</small></td>",
                        colour(f.nines),
                        f.nines,
                        f.failures,
                        f.runs
                    );
                }
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

/// One release: verdict, figures, families, failures.
fn release_section(out: &mut String, r: &ReleaseReport) {
    let _ = write!(out, "<section id=\"release-{}\"><h2>{}</h2>", escape(&r.release), escape(&r.release));
    if let Some(g) = &r.gate {
        let class = if g.passed { "pass" } else { "fail" };
        let _ = write!(out, "<p class=\"verdict {class}\">{}</p>", escape(&g.line()));
        for w in &g.warnings {
            let _ = write!(out, "<p>warning: {}</p>", escape(w));
        }
    }
    if let Some(line) = r.must_pass_line() {
        let class = if r.must_pass.failures > 0 { " class=\"fail\"" } else { "" };
        let _ = write!(out, "<p{class}>{}</p>", escape(&line));
    }
    let _ = write!(
        out,
        "<p>{} on suite <b>{}</b>, {}{}</p><p>{}</p>",
        escape(&r.policy),
        escape(&r.suite),
        escape(&r.created_at),
        r.model_digest.as_deref().map(|d| format!(", model <code>{}</code>", escape(d))).unwrap_or_default(),
        escape(&r.kinds_line())
    );
    let _ = write!(out, "<p>all counted runs: {}</p>", escape(&r.figures.line()));
    if let Some(timing) = &r.inference {
        let class = if timing.slow { " class=\"fail\"" } else { "" };
        let _ = write!(out, "<p{class}>{}</p>", escape(&timing.line()));
    }
    if let Some(line) = r.seen_line() {
        let _ = write!(out, "<p>{}</p>", escape(&line));
    }
    out.push_str(
        "<table><tr><th>family</th><th>runs</th><th>failures</th><th>rate</th><th>upper bound</th><th>nines</th>\
         <th>per km (95%)</th><th>per hour (95%)</th><th>failures by category</th></tr>",
    );
    for fam in &r.families {
        let g = &fam.figures;
        if fam.was_skipped() {
            let _ = write!(
                out,
                "<tr><td>{}</td><td class=\"skipped\" colspan=\"8\">skipped ({} runs)</td></tr>",
                escape(&fam.family),
                fam.skipped
            );
            continue;
        }
        let categories: Vec<String> =
            g.by_category.iter().map(|(c, n)| format!("{} {n}", escape(c))).collect();
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.4}</td><td>{:.5}</td><td style=\"background:{}\">{:.2}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&fam.family),
            g.runs,
            g.failures,
            g.failure_rate,
            g.upper_bound,
            colour(g.nines),
            g.nines,
            rate(g.per_km_upper),
            rate(g.per_hour_upper),
            categories.join(", ")
        );
    }
    out.push_str("</table>");
    let groups = failure_groups(r);
    if !groups.is_empty() {
        out.push_str("<h3>Failures, the largest group first</h3>");
    }
    for ((family, category), fails) in groups {
        let _ = write!(
            out,
            "<h4 class=\"fail\">{}: {} {}</h4><ul>",
            escape(family),
            fails.len(),
            escape(category)
        );
        for fail in fails {
            let _ = write!(
                out,
                "<li><b>{}</b>{}{} at {:.1} s: {}{}</li>",
                escape(&fail.run),
                if fail.must_pass { " [must pass]" } else { "" },
                if fail.seen_in_training { " [seen in training]" } else { "" },
                fail.time_s,
                escape(&fail.detail),
                fail.replay
                    .as_deref()
                    .map(|c| format!("<br/>replay: <code>{}</code>", escape(c)))
                    .unwrap_or_default()
            );
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>");
}

/// The HTML report: overview table, small multiples, then every release,
/// newest first.
pub fn html(reports: &[ReleaseReport]) -> Result<String> {
    let mut out = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"/><title>nines report</title><style>\
         body{font-family:sans-serif;margin:2em;max-width:90em}table{border-collapse:collapse;margin:.5em 0 1.5em}\
         td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right;vertical-align:top}\
         td:first-child,th:first-child{text-align:left}code{background:#f4f4f4;padding:0 .3em}\
         .fail{color:#a00}.pass{color:#060}.na{color:#999}.skipped{color:#666;font-style:italic}\
         .panels{display:flex;flex-wrap:wrap;gap:.5em}.panels figure{margin:0}\
         section{border-top:2px solid #ddd;margin-top:1.5em}</style></head>\n<body><h1>nines report</h1>",
    );
    out.push_str(
        "<p>Demonstrated nines: -log10 of the one-sided 95% upper bound on the failure rate. Runs the model \
         trained on are counted apart. Releases are numbered in the order they were evaluated.</p>",
    );
    overview(&mut out, reports);
    out.push_str(
        "<h2>Nines per family</h2><p>Blue dots: demonstrated nines (95% bound) per release, by number. \
         Grey bars: from there up to the nines of the observed failure rate (to the top of the axis when \
         no run failed). Every panel shares the same axes.</p>",
    );
    out.push_str(&chart_svg(reports)?);
    for r in reports.iter().rev() {
        release_section(&mut out, r);
    }
    out.push_str("</body></html>\n");
    Ok(out)
}
