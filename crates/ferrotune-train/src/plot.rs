//! `training_loss.png`: the logged losses and their smoothed curve, as LLaMA-Factory's
//! `plot_loss` draws them (v0.9.5 `extras/ploting.py`): raw curve at 40 % opacity, an EMA
//! whose weight is a sigmoid of the number of points (TensorBoard's smoothing), 640×480.
//!
//! Text needs a font file: the first of [`FONT_CANDIDATES`] that exists is used; without one
//! the curves are drawn without title and tick labels (a warning says so).

use std::path::Path;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::error::TrainError;

/// Font files tried for the plot's text, in order.
pub const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// LLaMA-Factory's `smooth`: EMA with weight `1.8 · (σ(0.05·n) − 0.5)` for n points,
/// starting from the first value.
pub fn smooth(values: &[f64]) -> Vec<f64> {
    let Some(&first) = values.first() else {
        return Vec::new();
    };
    let n = values.len() as f64;
    let weight = 1.8 * (1.0 / (1.0 + (-0.05 * n).exp()) - 0.5);
    let mut last = first;
    values
        .iter()
        .map(|&v| {
            last = last * weight + (1.0 - weight) * v;
            last
        })
        .collect()
}

/// Registers the first font of [`FONT_CANDIDATES`] under the name `sans-serif`; false when
/// none can be read.
fn register_sans() -> bool {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REGISTERED.get_or_init(|| {
        FONT_CANDIDATES.iter().any(|p| match std::fs::read(p) {
            // plotters keeps the font for the process: leaked once.
            Ok(bytes) => register_font(
                "sans-serif",
                FontStyle::Normal,
                Box::leak(bytes.into_boxed_slice()),
            )
            .is_ok(),
            Err(_) => false,
        })
    })
}

/// Draws a curve of the logged `key` (`loss` → `training_loss.png`, `eval_loss` →
/// `training_eval_loss.png`, as LLaMA-Factory names them) at `path` from `(step, value)`
/// points, titled `training {key} of {title}`.
///
/// Errors: [`TrainError::Write`] when drawing or encoding fails, [`TrainError::Io`].
pub fn plot_loss(
    path: &Path,
    key: &str,
    title: &str,
    points: &[(u64, f64)],
) -> Result<(), TrainError> {
    let err = |e: String| TrainError::Write {
        path: path.to_path_buf(),
        msg: e,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp.png");
    let tmp = std::path::PathBuf::from(tmp);
    let with_text = register_sans();
    if !with_text {
        tracing::warn!(
            "no font file found for the plot's text ({}); drawing the curves only",
            FONT_CANDIDATES.join(", ")
        );
    }
    {
        let root = BitMapBackend::new(&tmp, (640, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let losses: Vec<f64> = points.iter().map(|p| p.1).collect();
        let smoothed = smooth(&losses);
        let x_max = points.last().map_or(1, |p| p.0).max(1) as f64;
        let x_min = points.first().map_or(0, |p| p.0) as f64;
        let (lo, hi) = losses
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        let (lo, hi) = if lo.is_finite() && hi > lo {
            (lo, hi)
        } else {
            (lo.min(0.0), lo.max(0.0) + 1.0)
        };
        let pad = (hi - lo) * 0.05;
        let mut builder = ChartBuilder::on(&root);
        builder.margin(20);
        if with_text {
            builder
                .caption(format!("training {key} of {title}"), ("sans-serif", 18))
                .x_label_area_size(40)
                .y_label_area_size(60);
        }
        let mut chart = builder
            .build_cartesian_2d(x_min..x_max.max(x_min + 1.0), (lo - pad)..(hi + pad))
            .map_err(|e| err(e.to_string()))?;
        let mut mesh = chart.configure_mesh();
        mesh.disable_mesh();
        if with_text {
            mesh.x_desc("step").y_desc("loss");
        } else {
            mesh.x_labels(0).y_labels(0);
        }
        mesh.draw().map_err(|e| err(e.to_string()))?;
        let blue = RGBColor(0x1f, 0x77, 0xb4);
        let raw = points.iter().map(|&(s, l)| (s as f64, l));
        let series = chart
            .draw_series(LineSeries::new(raw, blue.mix(0.4).stroke_width(2)))
            .map_err(|e| err(e.to_string()))?;
        if with_text {
            series
                .label("original")
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue.mix(0.4)));
        }
        let sm = points
            .iter()
            .zip(&smoothed)
            .map(|(&(s, _), &l)| (s as f64, l));
        let series = chart
            .draw_series(LineSeries::new(sm, blue.stroke_width(2)))
            .map_err(|e| err(e.to_string()))?;
        if with_text {
            series
                .label("smoothed")
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue));
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| err(e.to_string()))?;
        }
        root.present().map_err(|e| err(e.to_string()))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_matches_llamafactory() {
        // LLaMA-Factory v0.9.5 `smooth([1.0, 2.0, 0.0])` (weight 0.0673737...), run in Python.
        let want = [1.0, 1.932_626_278_381_250_7, 0.130_208_224_872_737_84];
        let got = smooth(&[1.0, 2.0, 0.0]);
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{got:?}");
        }
        assert!(smooth(&[]).is_empty());
    }
}
