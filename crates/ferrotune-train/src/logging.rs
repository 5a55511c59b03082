//! Bookkeeping of the loop: the log entries LLaMA-Factory's `LogCallback` writes to
//! `trainer_log.jsonl` (v0.9.5 `train/callbacks.py`, `on_log`), the Hugging Face
//! `log_history` entries of `trainer_state.json`, and the progress bar.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::checkpoint::LoopPosition;
use crate::error::TrainError;
use crate::eval::EvalStats;
use crate::outputs::write_atomic;

/// File name of the JSON-lines log (LLaMA-Factory's `TRAINER_LOG`).
pub const TRAINER_LOG: &str = "trainer_log.jsonl";

/// One line of `trainer_log.jsonl`, fields in LLaMA-Factory's order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogEntry {
    /// Optimizer steps done.
    pub current_steps: u64,
    /// Optimizer steps of the run.
    pub total_steps: u64,
    /// Mean training loss since the previous log, rounded to 4 decimals (HF `Trainer._maybe_log_save_evaluate`);
    /// absent on evaluation lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    /// Loss on the evaluation set (HF `eval_loss`, unrounded); present on evaluation lines only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_loss: Option<f64>,
    /// Learning rate the step trained with (as transformers 5 logs it);
    /// absent on evaluation lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    /// Fractional epoch: finished epochs plus the fraction of micro-batches of this one.
    pub epoch: f64,
    /// `current_steps / total_steps · 100`, 2 decimals.
    pub percentage: f64,
    /// Wall time since the start, `H:MM:SS` (Python's `str(timedelta(seconds=int(t)))`).
    pub elapsed_time: String,
    /// Estimated time left, same format.
    pub remaining_time: String,
    /// Input tokens seen per second since the start, 2 decimals.
    pub throughput: f64,
    /// Non-padding input tokens seen.
    pub total_tokens: u64,
}

/// One entry of Hugging Face's `trainer_state.json` `log_history`: a training log or an
/// evaluation, told apart by their keys (`loss` or `eval_loss`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HistoryEntry {
    /// A training log.
    Train(TrainHistory),
    /// An evaluation during training.
    Eval(EvalHistory),
}

impl HistoryEntry {
    /// The optimizer step of the entry.
    pub fn step(&self) -> u64 {
        match self {
            HistoryEntry::Train(h) => h.step,
            HistoryEntry::Eval(h) => h.step,
        }
    }
}

/// An evaluation entry of `log_history`, keys as HF's `Trainer.evaluate` logs them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalHistory {
    /// Fractional epoch.
    pub epoch: f64,
    /// Loss on the evaluation set (see [`crate::eval::EvalStats::eval_loss`]).
    pub eval_loss: f64,
    /// Seconds of the evaluation, 4 decimals.
    pub eval_runtime: f64,
    /// Examples per second, 3 decimals.
    pub eval_samples_per_second: f64,
    /// Batches per second, 3 decimals.
    pub eval_steps_per_second: f64,
    /// Non-padding input tokens seen in training.
    pub num_input_tokens_seen: u64,
    /// Optimizer step.
    pub step: u64,
}

/// A training entry of `log_history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainHistory {
    /// Fractional epoch.
    pub epoch: f64,
    /// Global gradient norm before clipping, of the last step of the window.
    pub grad_norm: f64,
    /// Learning rate (as [`LogEntry::lr`]).
    pub learning_rate: f64,
    /// Mean loss of the window, 4 decimals.
    pub loss: f64,
    /// Non-padding input tokens seen.
    pub num_input_tokens_seen: u64,
    /// Optimizer step.
    pub step: u64,
}

/// Python's `str(datetime.timedelta(seconds=int(secs)))` for durations under a day:
/// `H:MM:SS`; `D day(s), H:MM:SS` beyond.
pub fn format_timedelta(secs: f64) -> String {
    let s = if secs.is_finite() && secs > 0.0 {
        secs as u64
    } else {
        0
    };
    let (days, rest) = (s / 86_400, s % 86_400);
    let hms = format!("{}:{:02}:{:02}", rest / 3600, rest % 3600 / 60, rest % 60);
    match days {
        0 => hms,
        1 => format!("1 day, {hms}"),
        d => format!("{d} days, {hms}"),
    }
}

/// Rounds to `digits` decimals as Python's `round` does for the values logged here.
pub fn round_to(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

/// Writes log lines to `output_dir/trainer_log.jsonl` (each write replaces the file through a
/// temporary name, so a reader never sees half a line; see [`TrainLogger::continue_from`]
/// for what happens to an existing file) and drives the progress bar.
#[derive(Debug)]
pub struct TrainLogger {
    path: Option<PathBuf>,
    lines: String,
    bar: ProgressBar,
    start: Instant,
}

impl TrainLogger {
    /// A logger for `total_steps` steps writing into `output_dir` (or nowhere with `None`);
    /// the bar draws on stderr only when it is a terminal and `show_bar` is set.
    pub fn new(output_dir: Option<&Path>, total_steps: u64, show_bar: bool) -> Self {
        let bar = ProgressBar::hidden();
        if show_bar && std::io::stderr().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        let style = ProgressStyle::with_template(
            "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style.progress_chars("=> "));
        bar.set_length(total_steps);
        TrainLogger {
            path: output_dir.map(|d| d.join(TRAINER_LOG)),
            lines: String::new(),
            bar,
            start: Instant::now(),
        }
    }

    /// Starts `trainer_log.jsonl` for a run at `pos`: the lines of an earlier run up to step
    /// `pos.global_step` are kept (a run resumed from a checkpoint continues the log of the
    /// run that wrote it), later lines (written after that checkpoint by a run that was then
    /// stopped) and every line of a fresh run's folder (`pos.global_step` 0) are dropped.
    /// LLaMA-Factory's `LogCallback` appends to the file instead, which repeats the steps
    /// done after the checkpoint; the resumed log here reads as the uninterrupted one.
    ///
    /// Errors: [`TrainError::Io`] when the log exists but cannot be read or rewritten.
    pub fn continue_from(&mut self, pos: &LoopPosition) -> Result<(), TrainError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(TrainError::io(path, e)),
        };
        self.lines.clear();
        for line in text.lines() {
            let step = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("current_steps").and_then(serde_json::Value::as_u64));
            if step.is_some_and(|s| s <= pos.global_step) {
                self.lines.push_str(line);
                self.lines.push('\n');
            }
        }
        write_atomic(path, self.lines.as_bytes())
    }

    /// Seconds since the logger was made.
    pub fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Advances the bar by one step.
    pub fn step(&self) {
        self.bar.inc(1);
    }

    /// Shows `entry` on the bar and appends it to `trainer_log.jsonl`.
    ///
    /// Errors: [`TrainError::Write`]/[`TrainError::Io`] when the log cannot be written.
    pub fn log(&mut self, entry: &LogEntry) -> Result<(), TrainError> {
        let msg = match (entry.loss, entry.eval_loss, entry.lr) {
            (Some(loss), _, Some(lr)) => {
                format!("loss {loss:.4}, lr {lr:.3e}, {:.0} tok/s", entry.throughput)
            }
            (_, Some(eval), _) => format!("eval_loss {eval:.4}"),
            _ => format!("{:.0} tok/s", entry.throughput),
        };
        self.bar.set_message(msg);
        let Some(path) = &self.path else {
            return Ok(());
        };
        let line = serde_json::to_string(entry).map_err(|e| TrainError::Write {
            path: path.clone(),
            msg: e.to_string(),
        })?;
        self.lines.push_str(&line);
        self.lines.push('\n');
        write_atomic(path, self.lines.as_bytes())
    }

    /// Logs step `pos.global_step`: the mean loss since the previous log (4 decimals), `lr`,
    /// speed and time estimates; appends to `pos.log_history` and resets the loss window.
    ///
    /// Errors: as [`TrainLogger::log`].
    pub fn log_step(
        &mut self,
        pos: &mut LoopPosition,
        lr: f64,
        grad_norm: f64,
        epoch: f64,
        max_steps: u64,
    ) -> Result<(), TrainError> {
        let step = pos.global_step;
        let loss = round_to(pos.window_loss / (step - pos.last_logged).max(1) as f64, 4);
        let mut entry = self.entry(pos, epoch, max_steps);
        entry.loss = Some(loss);
        entry.lr = Some(lr);
        self.log(&entry)?;
        pos.log_history.push(HistoryEntry::Train(TrainHistory {
            epoch,
            grad_norm,
            learning_rate: lr,
            loss,
            num_input_tokens_seen: pos.tokens,
            step,
        }));
        pos.window_loss = 0.0;
        pos.last_logged = step;
        Ok(())
    }

    /// Logs an evaluation at step `pos.global_step` as LLaMA-Factory's `LogCallback` writes
    /// it (`eval_loss` in place of `loss` and `lr`) and appends it to `pos.log_history`.
    ///
    /// Errors: as [`TrainLogger::log`].
    pub fn log_eval(
        &mut self,
        pos: &mut LoopPosition,
        stats: &EvalStats,
        epoch: f64,
        max_steps: u64,
    ) -> Result<(), TrainError> {
        let mut entry = self.entry(pos, epoch, max_steps);
        entry.eval_loss = Some(stats.eval_loss);
        self.log(&entry)?;
        let metrics = stats.metrics(None);
        let num = |k: &str| {
            metrics
                .get(k)
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(0.0)
        };
        pos.log_history.push(HistoryEntry::Eval(EvalHistory {
            epoch,
            eval_loss: stats.eval_loss,
            eval_runtime: num("eval_runtime"),
            eval_samples_per_second: num("eval_samples_per_second"),
            eval_steps_per_second: num("eval_steps_per_second"),
            num_input_tokens_seen: pos.tokens,
            step: pos.global_step,
        }));
        Ok(())
    }

    /// A line at `pos.global_step` with the progress, time and token fields filled in and
    /// no loss.
    fn entry(&self, pos: &LoopPosition, epoch: f64, max_steps: u64) -> LogEntry {
        let step = pos.global_step;
        let elapsed = self.elapsed();
        LogEntry {
            current_steps: step,
            total_steps: max_steps,
            loss: None,
            eval_loss: None,
            lr: None,
            epoch,
            percentage: round_to(step as f64 / max_steps.max(1) as f64 * 100.0, 2),
            elapsed_time: format_timedelta(elapsed),
            remaining_time: format_timedelta(
                max_steps.saturating_sub(step) as f64 * elapsed / step.max(1) as f64,
            ),
            throughput: round_to(pos.tokens as f64 / elapsed.max(1e-9), 2),
            total_tokens: pos.tokens,
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timedelta_like_python() {
        assert_eq!(format_timedelta(0.4), "0:00:00");
        assert_eq!(format_timedelta(3725.9), "1:02:05");
        assert_eq!(format_timedelta(90_061.0), "1 day, 1:01:01");
    }
}
