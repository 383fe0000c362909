//! Hand-written SVG plots: grouped bars (rates, times) and latency
//! distributions. Plain text, no dependency, readable in a browser and in
//! a diff.

use std::fmt::Write;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 380.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 70.0;
/// One colour per series (fleetmq, Mosquitto, rumqttd, ...).
const COLOURS: &[&str] = &["#1b7837", "#2166ac", "#b2182b", "#8c510a", "#762a83"];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn header(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        WIDTH / 2.0,
        escape(title)
    );
}

fn legend(out: &mut String, names: &[String]) {
    for (i, name) in names.iter().enumerate() {
        let y = TOP + 10.0 + i as f64 * 20.0;
        let x = WIDTH - RIGHT + 15.0;
        let _ = writeln!(
            out,
            "<rect x=\"{x}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"{}\">{}</text>",
            y - 10.0,
            COLOURS[i % COLOURS.len()],
            x + 18.0,
            y,
            escape(name)
        );
    }
}

/// A "nice" upper bound for an axis.
fn nice_max(value: f64) -> f64 {
    if !(value.is_finite() && value > 0.0) {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if value <= step * magnitude {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

fn number(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.1}M", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.0}k", value / 1e3)
    } else if value >= 10.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

/// Grouped bars: one group per label, one bar per series in each.
/// `values[group][series]` (NaN: no bar).
pub fn bars(
    title: &str,
    unit: &str,
    groups: &[String],
    series: &[String],
    values: &[Vec<f64>],
) -> String {
    let mut out = String::new();
    header(&mut out, title);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let max = nice_max(
        values
            .iter()
            .flatten()
            .copied()
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max),
    );
    for tick in 0..=5 {
        let value = max * tick as f64 / 5.0;
        let y = TOP + plot_h * (1.0 - tick as f64 / 5.0);
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#ddd\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            LEFT + plot_w,
            LEFT - 6.0,
            y + 4.0,
            number(value)
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"16\" y=\"{}\" transform=\"rotate(-90 16 {})\" text-anchor=\"middle\">{}</text>",
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
        escape(unit)
    );
    let group_w = plot_w / groups.len().max(1) as f64;
    let bar_w = group_w * 0.8 / series.len().max(1) as f64;
    for (g, label) in groups.iter().enumerate() {
        let group_x = LEFT + g as f64 * group_w + group_w * 0.1;
        for (s, _) in series.iter().enumerate() {
            let Some(&value) = values.get(g).and_then(|row| row.get(s)) else {
                continue;
            };
            if !value.is_finite() {
                continue;
            }
            let h = plot_h * (value / max).min(1.0);
            let x = group_x + s as f64 * bar_w;
            let _ = writeln!(
                out,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\">\
                 <title>{}</title></rect>",
                TOP + plot_h - h,
                bar_w * 0.95,
                COLOURS[s % COLOURS.len()],
                number(value)
            );
        }
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            group_x + group_w * 0.4,
            TOP + plot_h + 18.0,
            escape(label)
        );
    }
    legend(&mut out, series);
    out.push_str("</svg>\n");
    out
}

/// Latency distributions: x is the quantile on a "nines" scale (50%, 90%,
/// 99%, 99.9%, 99.99%), y the latency in milliseconds on a log scale.
/// `series` holds (name, [(quantile, microseconds)]).
pub fn distribution(title: &str, series: &[(String, Vec<(f64, f64)>)]) -> String {
    let mut out = String::new();
    header(&mut out, title);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let nines = |q: f64| -(1.0 - q).max(1e-4).log10();
    let all_ms = series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|(_, us)| us / 1000.0))
        .filter(|v| v.is_finite() && *v > 0.0);
    let (min_ms, max_ms) = all_ms.fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if max_ms > 0.0 {
        (
            10f64.powf(min_ms.log10().floor()),
            10f64.powf(max_ms.log10().ceil().max(min_ms.log10().floor() + 1.0)),
        )
    } else {
        (0.01, 1.0)
    };
    let x_of = |q: f64| LEFT + plot_w * nines(q) / 4.0;
    let y_of = |ms: f64| {
        let t = (ms.max(lo).log10() - lo.log10()) / (hi.log10() - lo.log10());
        TOP + plot_h * (1.0 - t)
    };
    for (q, label) in [
        (0.0, "0%"),
        (0.9, "90%"),
        (0.99, "99%"),
        (0.999, "99.9%"),
        (0.9999, "99.99%"),
    ] {
        let x = x_of(q);
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#ddd\"/>\
             <text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{label}</text>",
            TOP + plot_h,
            TOP + plot_h + 18.0
        );
    }
    let mut decade = lo;
    while decade <= hi * 1.0001 {
        let y = y_of(decade);
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{} ms</text>",
            LEFT + plot_w,
            LEFT - 6.0,
            y + 4.0,
            number(decade)
        );
        decade *= 10.0;
    }
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">quantile</text>",
        LEFT + plot_w / 2.0,
        HEIGHT - 25.0
    );
    for (i, (_, points)) in series.iter().enumerate() {
        let path: Vec<String> = points
            .iter()
            .filter(|(_, us)| us.is_finite())
            .map(|(q, us)| format!("{:.1},{:.1}", x_of(*q), y_of(us / 1000.0)))
            .collect();
        if path.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>",
            COLOURS[i % COLOURS.len()],
            path.join(" ")
        );
    }
    let names: Vec<String> = series.iter().map(|(name, _)| name.clone()).collect();
    legend(&mut out, &names);
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_and_distribution_are_svg() {
        let svg = bars(
            "rates",
            "connects/s",
            &["a".into(), "b".into()],
            &["fleetmq".into(), "mosquitto".into()],
            &[vec![1.0, 2.0], vec![f64::NAN, 3.0]],
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(
            svg.matches("<rect x=").count(),
            3 + 2,
            "3 bars, 2 legend boxes"
        );
        let svg = distribution(
            "latency",
            &[("fleetmq".into(), vec![(0.0, 100.0), (0.99, 900.0)])],
        );
        assert!(svg.contains("<polyline"));
    }

    #[test]
    fn nice_axis_bounds() {
        assert_eq!(nice_max(7_300.0), 10_000.0);
        assert_eq!(nice_max(180.0), 200.0);
        assert_eq!(nice_max(0.0), 1.0);
    }
}
