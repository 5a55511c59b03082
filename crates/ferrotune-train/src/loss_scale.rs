//! Dynamic loss scaling for `fp16: true`, as `torch.amp.GradScaler` with its defaults (what
//! the HF Trainer uses for fp16 mixed precision).
//!
//! With fp16 operands the products' gradients underflow below 6e-8 and overflow beyond 65,504
//! (see [`ferrotune_model::kernels::precision`]). The loss is multiplied by `scale` before
//! backward, so small gradients stay representable, and the gradients are divided by it
//! before clipping and the update. A step whose loss or gradients are not finite is skipped
//! (no update) and the scale halved; after `growth_interval` finite steps in a row it doubles.
//! Source: Micikevicius et al. 2018, *Mixed Precision Training*, §3.2; torch's
//! `torch/amp/grad_scaler.py` (`init_scale=2**16`, `growth_factor=2`, `backoff_factor=0.5`,
//! `growth_interval=2000`).

/// The scaler's state. It is not saved in checkpoints: a resumed run starts again from the
/// initial scale and finds its level within a few skipped steps.
#[derive(Debug, Clone, PartialEq)]
pub struct LossScaler {
    scale: f64,
    good_steps: u32,
    growth_interval: u32,
}

impl Default for LossScaler {
    fn default() -> Self {
        LossScaler {
            scale: 65_536.0,
            good_steps: 0,
            growth_interval: 2000,
        }
    }
}

impl LossScaler {
    /// A scaler starting at `scale` that doubles after `growth_interval` finite steps.
    pub fn new(scale: f64, growth_interval: u32) -> Self {
        LossScaler {
            scale,
            good_steps: 0,
            growth_interval: growth_interval.max(1),
        }
    }

    /// The factor the loss is multiplied by for the next backward.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Records one step: `finite` = its loss and gradients were all finite. Returns whether
    /// the update may be applied (false: skip it; the scale has been halved).
    pub fn update(&mut self, finite: bool) -> bool {
        if finite {
            self.good_steps += 1;
            if self.good_steps >= self.growth_interval {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
        } else {
            self.scale *= 0.5;
            self.good_steps = 0;
        }
        finite
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_on_overflow_and_doubles_after_the_growth_interval() {
        let mut s = LossScaler::new(1024.0, 3);
        assert!(!s.update(false));
        assert_eq!(s.scale(), 512.0);
        assert!(s.update(true));
        assert!(s.update(true));
        assert_eq!(s.scale(), 512.0);
        // An overflow resets the run of good steps.
        assert!(!s.update(false));
        assert_eq!(s.scale(), 256.0);
        for _ in 0..3 {
            assert!(s.update(true));
        }
        assert_eq!(s.scale(), 512.0);
        assert_eq!(LossScaler::default().scale(), 65_536.0);
    }
}
