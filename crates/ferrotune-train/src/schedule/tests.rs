//! Hand-derived schedule values (the Python reference comparison is in
//! `tests/schedulers_fixture.rs`).

use ferrotune_config::args::SchedulerType;
use ferrotune_config::TrainingArguments;
use serde_json::json;

use super::{Schedule, ScheduleError};

fn args(
    kind: SchedulerType,
    warmup_steps: u64,
    kwargs: Option<serde_json::Value>,
) -> TrainingArguments {
    TrainingArguments {
        learning_rate: 2.0,
        lr_scheduler_type: kind,
        warmup_steps,
        lr_scheduler_kwargs: kwargs,
        ..TrainingArguments::default()
    }
}

/// Factors of steps `0..=last` of the schedule, for `total` steps.
fn factors(a: &TrainingArguments, total: u64, last: u64) -> Vec<f64> {
    let s = Schedule::from_config(a, total).unwrap();
    (0..=last).map(|k| s.lr_at(k) / a.learning_rate).collect()
}

fn assert_close(got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() < 1e-12,
            "step {k}: got {g}, want {w} (all: {got:?})"
        );
    }
}

#[test]
fn warmup_ratio_rounds_up_and_steps_take_precedence() {
    let mut a = args(SchedulerType::Linear, 0, None);
    a.warmup_ratio = 0.25;
    assert_eq!(Schedule::from_config(&a, 10).unwrap().warmup_steps(), 3); // ceil(2.5)
    a.warmup_steps = 1;
    assert_eq!(Schedule::from_config(&a, 10).unwrap().warmup_steps(), 1);
}

#[test]
fn linear_ramps_up_then_down_to_zero() {
    let a = args(SchedulerType::Linear, 2, None);
    let want = [
        0.0,
        0.5,
        1.0,
        7.0 / 8.0,
        0.75,
        0.625,
        0.5,
        0.375,
        0.25,
        0.125,
        0.0,
        0.0,
    ];
    assert_close(&factors(&a, 10, 11), &want);
    // lr_at multiplies the factor by learning_rate.
    assert_eq!(Schedule::from_config(&a, 10).unwrap().lr_at(1), 1.0);
}

#[test]
fn cosine_halfway_is_half_and_restarts_jump_back() {
    let a = args(SchedulerType::Cosine, 0, None);
    let f = factors(&a, 10, 10);
    assert_close(&[f[0], f[5], f[10]], &[1.0, 0.5, 0.0]);
    let a = args(
        SchedulerType::CosineWithRestarts,
        0,
        Some(json!({"num_cycles": 2})),
    );
    let f = factors(&a, 10, 10);
    let at_04 = 0.5 * (1.0 + (std::f64::consts::PI * 0.4).cos());
    assert_close(&[f[0], f[2], f[5], f[10]], &[1.0, at_04, 1.0, 0.0]);
}

#[test]
fn polynomial_decays_to_lr_end() {
    let mut a = args(
        SchedulerType::Polynomial,
        0,
        Some(json!({"lr_end": 0.2, "power": 2})),
    );
    // lr 2, end 0.2: at step 5 (half way) 1.8 * 0.25 + 0.2 = 0.65, i.e. factor 0.325.
    let f = factors(&a, 10, 11);
    assert_close(&[f[0], f[5], f[10], f[11]], &[1.0, 0.325, 0.1, 0.1]);
    a.learning_rate = 0.1;
    let err = Schedule::from_config(&a, 10).unwrap_err();
    assert!(matches!(err, ScheduleError::LrEndTooLarge { .. }), "{err}");
}

#[test]
fn inverse_sqrt_uses_warmup_as_timescale() {
    let a = args(SchedulerType::InverseSqrt, 4, None);
    let f = factors(&a, 100, 12);
    assert_close(&[f[2], f[4], f[12]], &[0.5, 1.0, 1.0 / 3f64.sqrt()]);
    // No warmup: timescale 10000, so step 30000 gives 1/sqrt(4).
    let s = Schedule::from_config(&args(SchedulerType::InverseSqrt, 0, None), 100).unwrap();
    assert!((s.factor_at(30_000) - 0.5).abs() < 1e-15);
}

#[test]
fn constant_ignores_warmup_and_constant_with_warmup_ramps() {
    let a = args(SchedulerType::Constant, 5, Some(json!({"anything": 1})));
    assert_close(&factors(&a, 10, 2), &[1.0, 1.0, 1.0]);
    let a = args(SchedulerType::ConstantWithWarmup, 4, None);
    assert_close(&factors(&a, 10, 5), &[0.0, 0.25, 0.5, 0.75, 1.0, 1.0]);
}

#[test]
fn cosine_with_min_lr_floors_at_min_lr() {
    let a = args(
        SchedulerType::CosineWithMinLr,
        0,
        Some(json!({"min_lr": 0.2})),
    );
    let f = factors(&a, 10, 10);
    assert_close(&[f[0], f[5], f[10]], &[1.0, 0.55, 0.1]);
    let both = args(
        SchedulerType::CosineWithMinLr,
        0,
        Some(json!({"min_lr": 0.2, "min_lr_rate": 0.1})),
    );
    assert!(matches!(
        Schedule::from_config(&both, 10),
        Err(ScheduleError::MinLrConflict { .. })
    ));
    let none = args(SchedulerType::CosineWithMinLr, 0, None);
    let err = Schedule::from_config(&none, 10).unwrap_err();
    assert!(
        err.to_string()
            .contains("needs `lr_scheduler_kwargs.min_lr`"),
        "{err}"
    );
}

#[test]
fn cosine_warmup_with_min_lr_starts_one_step_ahead() {
    let a = args(
        SchedulerType::CosineWarmupWithMinLr,
        4,
        Some(json!({"min_lr_rate": 0.0})),
    );
    let f = factors(&a, 10, 10);
    let at = |p: f64| 0.5 * (1.0 + (std::f64::consts::PI * p).cos());
    assert_close(&f[..5], &[0.25, 0.5, 0.75, 1.0, at(1.0 / 6.0)]);
    assert_close(&[f[9]], &[0.0]);
    let a = args(
        SchedulerType::CosineWarmupWithMinLr,
        4,
        Some(json!({"min_lr_rate": 0.0, "warmup_lr_rate": 0.1})),
    );
    let f = factors(&a, 10, 3);
    assert_close(&f, &[0.1, 0.4, 0.7, 1.0]); // 0.1 + 0.9 * k / 3
}

#[test]
fn warmup_stable_decay_uses_llamafactory_defaults() {
    // 10 steps, 1 warmup: 9 remain, 3 stable, 6 decay (cosine).
    let a = args(SchedulerType::WarmupStableDecay, 1, None);
    let f = factors(&a, 10, 11);
    assert_close(&f[..5], &[0.0, 1.0, 1.0, 1.0, 1.0]);
    assert_close(&[f[7], f[10], f[11]], &[0.5, 0.0, 0.0]);
    let a = args(
        SchedulerType::WarmupStableDecay,
        1,
        Some(json!({"decay_type": "linear", "min_lr_ratio": 0.1, "num_stable_steps": 1})),
    );
    // Stable 1 step, decay stays at the default 6: steps 2..8 decay, then the floor.
    let f = factors(&a, 10, 10);
    assert_close(
        &[f[0], f[1], f[2], f[5], f[8], f[10]],
        &[0.1, 1.0, 1.0, 0.55, 0.1, 0.1],
    );
}

#[test]
fn kwargs_are_checked_like_python_keyword_arguments() {
    let a = args(SchedulerType::Linear, 0, Some(json!({"num_cycles": 1})));
    let err = Schedule::from_config(&a, 10).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`lr_scheduler_kwargs.num_cycles` is not a parameter of the `linear` schedule, which takes none; hint: remove the key or change `lr_scheduler_type`"
    );
    let a = args(SchedulerType::Cosine, 0, Some(json!({"num_cycles": "two"})));
    let err = Schedule::from_config(&a, 10).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`lr_scheduler_kwargs.num_cycles` must be a number, got \"two\""
    );
    // A JSON string is parsed as transformers does.
    // One full wave: down to 0 half way, back to 1 at the end.
    let a = args(
        SchedulerType::Cosine,
        0,
        Some(json!("{\"num_cycles\": 1.0}")),
    );
    let f = factors(&a, 10, 10);
    assert_close(&[f[5], f[10]], &[0.0, 1.0]);
    let a = args(SchedulerType::ReduceLrOnPlateau, 0, None);
    assert_eq!(
        Schedule::from_config(&a, 10),
        Err(ScheduleError::NotStepFunction)
    );
}
