//! Reading `lr_scheduler_kwargs`: the keyword arguments transformers forwards to the schedule
//! function (`scheduler_specific_kwargs` of `get_scheduler`). Keys a function does not take are
//! errors, as Python's `TypeError` is; `null` counts as unset for the keys whose Python default
//! is `None`.

use serde_json::{Map, Value};

use super::{ScheduleError, ScheduleKind, WsdShape};

/// The parsed `lr_scheduler_kwargs` mapping (empty when unset).
pub(super) struct Kwargs(Map<String, Value>);

impl Kwargs {
    /// Accepts a mapping, a JSON string holding one (transformers parses string-valued dict
    /// fields as JSON), or nothing.
    pub(super) fn parse(value: Option<&Value>) -> Result<Self, ScheduleError> {
        let not_mapping = |v: &Value| ScheduleError::KwargsNotMapping {
            found: v.to_string(),
        };
        match value {
            None | Some(Value::Null) => Ok(Kwargs(Map::new())),
            Some(Value::Object(map)) => Ok(Kwargs(map.clone())),
            Some(v @ Value::String(text)) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(map)) => Ok(Kwargs(map)),
                _ => Err(not_mapping(v)),
            },
            Some(v) => Err(not_mapping(v)),
        }
    }

    /// Fails on the first key (in written order) outside `allowed`.
    pub(super) fn only(
        &self,
        scheduler: &'static str,
        allowed: &[&str],
    ) -> Result<(), ScheduleError> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            None => Ok(()),
            Some(key) => Err(ScheduleError::UnknownKwarg {
                scheduler,
                key: key.clone(),
                allowed: if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            }),
        }
    }

    /// A number (integer or float); `None` when absent or `null`.
    pub(super) fn number(&self, key: &str) -> Result<Option<f64>, ScheduleError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| type_error(key, "a number", v)),
        }
    }

    /// An integer step count; `None` when absent or `null`.
    fn integer(&self, key: &str) -> Result<Option<i64>, ScheduleError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| type_error(key, "an integer", v)),
        }
    }

    /// A `warmup_stable_decay` phase shape; `default` when absent.
    fn shape(&self, key: &str, default: WsdShape) -> Result<WsdShape, ScheduleError> {
        let expected = "one of `linear`, `cosine`, `1-sqrt`";
        match self.0.get(key) {
            None => Ok(default),
            Some(Value::String(s)) if s == "linear" => Ok(WsdShape::Linear),
            Some(Value::String(s)) if s == "cosine" => Ok(WsdShape::Cosine),
            Some(Value::String(s)) if s == "1-sqrt" => Ok(WsdShape::OneMinusSqrt),
            Some(v) => Err(type_error(key, expected, v)),
        }
    }

    /// The floor of the min-lr cosines as a fraction of `learning_rate`: `min_lr_rate`, or
    /// `min_lr / learning_rate`; exactly one must be set.
    pub(super) fn min_lr_rate(
        &self,
        scheduler: &'static str,
        learning_rate: f64,
    ) -> Result<f64, ScheduleError> {
        match (self.number("min_lr")?, self.number("min_lr_rate")?) {
            (Some(min_lr), Some(min_lr_rate)) => Err(ScheduleError::MinLrConflict {
                min_lr,
                min_lr_rate,
            }),
            (Some(min_lr), None) => Ok(min_lr / learning_rate),
            (None, Some(rate)) => Ok(rate),
            (None, None) => Err(ScheduleError::MissingKwarg {
                scheduler,
                key: "min_lr",
                hint: "set `lr_scheduler_kwargs: {min_lr: 1.0e-6}` (absolute) or `{min_lr_rate: 0.1}` (fraction of `learning_rate`)",
            }),
        }
    }

    /// `warmup_stable_decay` with LLaMA-Factory's defaults: of the steps after the warmup, a
    /// third (rounded down) is stable and the rest decays, for whichever of `num_stable_steps`
    /// and `num_decay_steps` is not set.
    pub(super) fn wsd(
        &self,
        warmup_steps: u64,
        total_steps: u64,
    ) -> Result<ScheduleKind, ScheduleError> {
        let name = "warmup_stable_decay";
        self.only(
            name,
            &[
                "num_stable_steps",
                "num_decay_steps",
                "warmup_type",
                "decay_type",
                "min_lr_ratio",
                "num_cycles",
            ],
        )?;
        let remaining = total_steps as i64 - warmup_steps as i64;
        let default_stable = remaining.div_euclid(3);
        let num_stable_steps = self.integer("num_stable_steps")?.unwrap_or(default_stable);
        let num_decay_steps = self
            .integer("num_decay_steps")?
            .unwrap_or(remaining - default_stable);
        Ok(ScheduleKind::WarmupStableDecay {
            num_stable_steps,
            num_decay_steps,
            warmup_type: self.shape("warmup_type", WsdShape::Linear)?,
            decay_type: self.shape("decay_type", WsdShape::Cosine)?,
            min_lr_ratio: self.number("min_lr_ratio")?.unwrap_or(0.0),
            num_cycles: self.number("num_cycles")?.unwrap_or(0.5),
        })
    }
}

fn type_error(key: &str, expected: &'static str, found: &Value) -> ScheduleError {
    ScheduleError::KwargType {
        key: key.to_string(),
        expected,
        found: found.to_string(),
    }
}
