//! The HTML report: the chart of nines across releases (plotters, SVG)
//! and a page per release with its families and failures.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{ReleaseReport, rate};
use crate::{HarnessError, Result};

/// An SVG chart of demonstrated nines per release (overall, and per family).
pub fn chart_svg(reports: &[ReleaseReport]) -> Result<String> {
    use plotters::prelude::*;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let top = reports.iter().map(|r| r.figures.nines).fold(1.0_f64, f64::max).ceil() + 0.5;
        let n = reports.len().max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption("demonstrated nines per release (one-sided 95%)", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(-0.5..(n as f64 - 0.5), 0.0..top)
            .map_err(chart_error)?;
        let names: Vec<String> = reports.iter().map(|r| r.release.clone()).collect();
        chart
            .configure_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc("nines")
            .draw()
            .map_err(chart_error)?;
        let mut families: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
        for (i, r) in reports.iter().enumerate() {
            // A family a release skipped has no nines to plot.
            for f in r.families.iter().filter(|f| f.figures.runs > 0) {
                families.entry(f.family.as_str()).or_default().push((i as f64, f.figures.nines));
            }
        }
        for (j, (family, points)) in families.iter().enumerate() {
            let colour = Palette99::pick(j).mix(0.45);
            chart
                .draw_series(LineSeries::new(points.iter().copied(), colour.stroke_width(1)))
                .map_err(chart_error)?
                .label(*family)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], colour));
        }
        let overall: Vec<(f64, f64)> =
            reports.iter().enumerate().map(|(i, r)| (i as f64, r.figures.nines)).collect();
        chart
            .draw_series(LineSeries::new(overall.iter().copied(), BLACK.stroke_width(3)))
            .map_err(chart_error)?
            .label("all runs")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 14, y)], BLACK.stroke_width(3)));
        chart.draw_series(overall.iter().map(|&p| Circle::new(p, 4, BLACK.filled()))).map_err(chart_error)?;
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(chart_error)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// A plotters error, kept as the chart error's source.
fn chart_error<E: std::error::Error + Send + Sync + 'static>(e: E) -> HarnessError {
    HarnessError::Chart(Box::new(e))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The HTML report: the chart, then every release's tables and failures.
pub fn html(reports: &[ReleaseReport]) -> Result<String> {
    let mut out = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>nines report</title><style>\
         body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;margin:.5em 0 1.5em}\
         td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}td:first-child,th:first-child{text-align:left}\
         code{background:#f4f4f4;padding:0 .3em}.fail{color:#a00}</style></head><body><h1>nines report</h1>\n",
    );
    out.push_str(&chart_svg(reports)?);
    for r in reports {
        let f = &r.figures;
        let _ = write!(
            out,
            "<h2>{}</h2><p>{} on suite <b>{}</b>, {}{}</p><p><b>{:.2} nines</b>: {} runs, {} failures, rate {:.4}, \
             95% upper bound {:.5}; {:.1} km and {:.2} h driven: at most {} failures per km and {} per hour (95%).</p>",
            escape(&r.release),
            escape(&r.policy),
            escape(&r.suite),
            escape(&r.created_at),
            r.model_digest
                .as_deref()
                .map(|d| format!(", model <code>{}</code>", escape(d)))
                .unwrap_or_default(),
            f.nines,
            f.runs,
            f.failures,
            f.failure_rate,
            f.upper_bound,
            f.km,
            f.hours,
            rate(f.per_km_upper),
            rate(f.per_hour_upper)
        );
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
            let categories: Vec<String> =
                g.by_category.iter().map(|(c, n)| format!("{} {n}", escape(c))).collect();
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.4}</td><td>{:.5}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&fam.family),
                g.runs,
                g.failures,
                g.failure_rate,
                g.upper_bound,
                g.nines,
                rate(g.per_km_upper),
                rate(g.per_hour_upper),
                categories.join(", ")
            );
        }
        out.push_str("</table>");
        if !r.failed_runs.is_empty() {
            out.push_str("<h3>Failures</h3><ul>");
            for fail in &r.failed_runs {
                let _ = write!(
                    out,
                    "<li class=\"fail\"><b>{}</b>{}{} at {:.1} s: {} ({}){}</li>",
                    escape(&fail.run),
                    if fail.must_pass { " [must pass]" } else { "" },
                    if fail.seen_in_training { " [seen in training]" } else { "" },
                    fail.time_s,
                    escape(&fail.category),
                    escape(&fail.detail),
                    fail.replay
                        .as_deref()
                        .map(|c| format!("<br>replay: <code>{}</code>", escape(c)))
                        .unwrap_or_default()
                );
            }
            out.push_str("</ul>");
        }
    }
    out.push_str("</body></html>\n");
    Ok(out)
}
