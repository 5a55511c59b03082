//! Learning rates of every schedule against transformers 5.24 `get_scheduler`
//! (`fixtures/optim/schedulers.json`, made by `tools/make_optim_fixtures.py`): every step
//! within 1e-9 relative.

use std::path::PathBuf;

use ferrotune_config::args::SchedulerType;
use ferrotune_config::TrainingArguments;
use ferrotune_train::schedule::{Schedule, ScheduleError};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Fixture {
    base_lr: f64,
    cases: Vec<Case>,
    warmup_ratio_cases: Vec<RatioCase>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    lr_scheduler_type: String,
    num_warmup_steps: Option<u64>,
    num_training_steps: u64,
    lr_scheduler_kwargs: serde_json::Map<String, Value>,
    lrs: Vec<f64>,
}

#[derive(Deserialize)]
struct RatioCase {
    warmup_ratio: f64,
    num_training_steps: u64,
    num_warmup_steps: u64,
    lr_scheduler_type: String,
    lrs: Vec<f64>,
}

fn load() -> Fixture {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/optim/schedulers.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn scheduler_type(name: &str) -> SchedulerType {
    name.parse()
        .unwrap_or_else(|e| panic!("lr_scheduler_type {name}: {e:?}"))
}

/// Compares `lrs[k]` with `lr_at(k)` for every k; returns the largest relative error.
fn compare(name: &str, schedule: &Schedule, lrs: &[f64]) -> f64 {
    let mut worst = 0f64;
    for (k, &want) in lrs.iter().enumerate() {
        let got = schedule.lr_at(k as u64);
        let err = (got - want).abs() / want.abs().max(1e-300);
        let err = if want == 0.0 { got.abs() } else { err };
        assert!(
            err <= 1e-9,
            "{name}: step {k}: got {got:e}, want {want:e} (relative error {err:e})"
        );
        worst = worst.max(err);
    }
    worst
}

#[test]
fn every_schedule_matches_transformers() {
    let fixture = load();
    let mut checked = 0;
    for case in &fixture.cases {
        let kind = scheduler_type(&case.lr_scheduler_type);
        let mut kwargs = case.lr_scheduler_kwargs.clone();
        let warmup = case.num_warmup_steps.unwrap_or(0);
        // The fixture calls transformers' `get_wsd_schedule` directly, whose stable phase is
        // whatever the decay leaves. LLaMA-Factory's `create_custom_scheduler` (which our
        // defaults follow) would fill `num_stable_steps` with a third of the remaining steps
        // instead, so pin it to transformers' value here.
        if kind == SchedulerType::WarmupStableDecay && !kwargs.contains_key("num_stable_steps") {
            let decay = kwargs["num_decay_steps"].as_i64().unwrap();
            let stable = case.num_training_steps as i64 - warmup as i64 - decay;
            kwargs.insert("num_stable_steps".into(), stable.into());
        }
        let args = TrainingArguments {
            learning_rate: fixture.base_lr,
            lr_scheduler_type: kind,
            warmup_steps: warmup,
            lr_scheduler_kwargs: Some(Value::Object(kwargs)),
            ..TrainingArguments::default()
        };
        match Schedule::from_config(&args, case.num_training_steps) {
            Ok(schedule) => {
                assert_eq!(
                    case.lrs.len() as u64,
                    case.num_training_steps + 1,
                    "{}",
                    case.name
                );
                let worst = compare(&case.name, &schedule, &case.lrs);
                println!(
                    "{:<42} {} steps, max relative error {worst:.1e}",
                    case.name,
                    case.lrs.len()
                );
                checked += 1;
            }
            Err(ScheduleError::NotStepFunction) => {
                assert_eq!(kind, SchedulerType::ReduceLrOnPlateau, "{}", case.name)
            }
            Err(e) => panic!("{}: {e}", case.name),
        }
    }
    assert_eq!(
        checked, 14,
        "every step-function schedule of the fixture was compared"
    );
}

#[test]
fn warmup_ratio_rounds_up_as_transformers() {
    let fixture = load();
    assert!(!fixture.warmup_ratio_cases.is_empty());
    for case in &fixture.warmup_ratio_cases {
        let args = TrainingArguments {
            learning_rate: fixture.base_lr,
            lr_scheduler_type: scheduler_type(&case.lr_scheduler_type),
            warmup_ratio: case.warmup_ratio,
            ..TrainingArguments::default()
        };
        let schedule = Schedule::from_config(&args, case.num_training_steps).unwrap();
        let name = format!(
            "warmup_ratio {} of {}",
            case.warmup_ratio, case.num_training_steps
        );
        assert_eq!(schedule.warmup_steps(), case.num_warmup_steps, "{name}");
        compare(&name, &schedule, &case.lrs);
    }
}
