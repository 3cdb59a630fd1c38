//! AdamW over named tensors, written out so its state can be saved and a
//! resumed run continues exactly (tch's optimizer hides its moments).

use crate::config::{LrSchedule, Train};
use tch::{Kind, TchError, Tensor};

/// Learning rate of optimizer step `step` (0-based) of `total`.
///
/// Warm-up is linear from `lr / warmup` (step 0 already learns) to `lr` at step
/// `warmup - 1`; afterwards the progress `p = (step - warmup) / (total - warmup)`
/// runs over [0, 1) and the rate is `lr · ½(1 + cos πp)` (cosine), `lr · (1 - p)`
/// (linear) or `lr` (constant): it would reach 0 at step `total`, one past the last.
pub fn lr_at(cfg: &Train, step: usize, total: usize) -> f64 {
    let w = cfg.warmup_steps;
    if step < w {
        return cfg.lr * (step + 1) as f64 / w as f64;
    }
    let p = (step - w) as f64 / (total.saturating_sub(w)).max(1) as f64;
    match cfg.schedule {
        LrSchedule::Constant => cfg.lr,
        LrSchedule::Linear => cfg.lr * (1.0 - p).max(0.0),
        LrSchedule::Cosine => cfg.lr * 0.5 * (1.0 + (std::f64::consts::PI * p.min(1.0)).cos()),
    }
}

/// AdamW (Loshchilov & Hutter) as PyTorch computes it:
/// `p ← p·(1 − lr·wd)`, `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
/// `p ← p − lr · (m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ε)`.
/// Moments are f32 whatever the parameter's kind. Weight decay applies to
/// matrices only (dim ≥ 2), not to norms and biases.
pub(crate) struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// First and second moments, one per parameter, in the parameters' order.
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
}

impl AdamW {
    pub(crate) fn new(params: &[(String, Tensor)], betas: (f64, f64), eps: f64, weight_decay: f64) -> Result<AdamW, TchError> {
        let zeros = |p: &Tensor| Tensor::f_zeros(p.size(), (Kind::Float, p.device()));
        let m = params.iter().map(|(_, p)| zeros(p)).collect::<Result<_, _>>()?;
        let v = params.iter().map(|(_, p)| zeros(p)).collect::<Result<_, _>>()?;
        Ok(AdamW { beta1: betas.0, beta2: betas.1, eps, weight_decay, m, v })
    }

    /// Applies update number `t` (1-based, for bias correction) with rate `lr`.
    /// A parameter without a gradient is skipped, moments included (as PyTorch does).
    pub(crate) fn step(&mut self, params: &[(String, Tensor)], t: usize, lr: f64) -> Result<(), TchError> {
        let (b1, b2) = (self.beta1, self.beta2);
        let bc1 = 1.0 - b1.powi(t as i32);
        let bc2 = 1.0 - b2.powi(t as i32);
        tch::no_grad(|| -> Result<(), TchError> {
            for (((_, p), m), v) in params.iter().zip(&mut self.m).zip(&mut self.v) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let g = g.f_to_kind(Kind::Float)?;
                let _ = m.f_mul_scalar_(b1)?.f_add_(&g.f_mul_scalar(1.0 - b1)?)?;
                let _ = v.f_mul_scalar_(b2)?.f_addcmul_(&g, &g.f_mul_scalar(1.0 - b2)?)?;
                let denom = v.f_div_scalar(bc2)?.f_sqrt()?.f_add_scalar(self.eps)?;
                let mut value = p.f_to_kind(Kind::Float)?.f_detach()?;
                if self.weight_decay > 0.0 && p.dim() >= 2 {
                    value = value.f_mul_scalar(1.0 - lr * self.weight_decay)?;
                }
                value = value.f_sub(&m.f_div(&denom)?.f_mul_scalar(lr / bc1)?)?;
                let mut target = p.shallow_clone();
                target.f_copy_(&value)?;
            }
            Ok(())
        })
    }
}

/// Scales gradients so their global L2 norm is at most `max_norm` (0 = no
/// clipping); returns the norm before clipping (PyTorch's `clip_grad_norm_`).
pub(crate) fn clip_grad_norm(params: &[(String, Tensor)], max_norm: f64) -> Result<f64, TchError> {
    tch::no_grad(|| {
        let grads: Vec<Tensor> = params.iter().map(|(_, p)| p.grad()).filter(Tensor::defined).collect();
        if grads.is_empty() {
            return Ok(0.0);
        }
        let norms = grads.iter().map(|g| g.f_to_kind(Kind::Float)?.f_norm()).collect::<Result<Vec<_>, _>>()?;
        let total = Tensor::f_stack(&norms, 0)?.f_norm()?.f_double_value(&[])?;
        if max_norm > 0.0 && total.is_finite() {
            let coef = max_norm / (total + 1e-6);
            if coef < 1.0 {
                for mut g in grads {
                    let _ = g.f_mul_scalar_(coef)?;
                }
            }
        }
        Ok(total)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn cfg(schedule: LrSchedule) -> Train {
        Train { lr: 1.0, warmup_steps: 4, schedule, ..Train::default() }
    }

    #[test]
    fn schedules_warm_up_then_decay() {
        let c = cfg(LrSchedule::Cosine);
        assert_eq!(lr_at(&c, 0, 14), 0.25);
        assert_eq!(lr_at(&c, 3, 14), 1.0);
        assert_eq!(lr_at(&c, 4, 14), 1.0);
        assert!((lr_at(&c, 9, 14) - 0.5).abs() < 1e-12);
        assert!(lr_at(&c, 13, 14) > 0.0 && lr_at(&c, 13, 14) < 0.03);
        let l = cfg(LrSchedule::Linear);
        assert!((lr_at(&l, 9, 14) - 0.5).abs() < 1e-12);
        assert!((lr_at(&l, 13, 14) - 0.1).abs() < 1e-12);
        assert_eq!(lr_at(&cfg(LrSchedule::Constant), 13, 14), 1.0);
        let no_warmup = Train { warmup_steps: 0, ..c };
        assert_eq!(lr_at(&no_warmup, 0, 10), 1.0);
    }

    #[test]
    fn adamw_matches_hand_computation() {
        // One scalar-ish parameter, two steps, against the formula by hand.
        let p = Tensor::from_slice(&[1.0f32, -2.0]).view([1, 2]).set_requires_grad(true);
        let params = vec![("w".to_string(), p.shallow_clone())];
        let mut opt = AdamW::new(&params, (0.9, 0.999), 1e-8, 0.1).unwrap();
        let (mut w, mut m, mut v) = ([1.0f64, -2.0], [0.0f64; 2], [0.0f64; 2]);
        for t in 1..=2 {
            let loss = (&p * &p).sum(Kind::Float); // grad = 2w
            loss.backward();
            opt.step(&params, t, 0.01).unwrap();
            for i in 0..2 {
                let g = 2.0 * w[i];
                w[i] *= 1.0 - 0.01 * 0.1;
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                let mh = m[i] / (1.0 - 0.9f64.powi(t as i32));
                let vh = v[i] / (1.0 - 0.999f64.powi(t as i32));
                w[i] -= 0.01 * mh / (vh.sqrt() + 1e-8);
            }
            let mut g = p.grad();
            let _ = g.zero_();
        }
        let got: Vec<f32> = Vec::try_from(p.detach().view([-1])).unwrap();
        for i in 0..2 {
            assert!((got[i] as f64 - w[i]).abs() < 1e-6, "{got:?} vs {w:?}");
        }
    }

    #[test]
    fn clipping_bounds_the_global_norm() {
        let a = Tensor::zeros([2], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let b = Tensor::zeros([1], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        // grads 3, 0 and 4: global norm 5.
        let loss = (&a * Tensor::from_slice(&[3.0f32, 0.0])).sum(Kind::Float) + (&b * 4.0).sum(Kind::Float);
        loss.backward();
        let params = vec![("a".to_string(), a.shallow_clone()), ("b".to_string(), b.shallow_clone())];
        let norm = clip_grad_norm(&params, 1.0).unwrap();
        assert!((norm - 5.0).abs() < 1e-6);
        let after = clip_grad_norm(&params, 0.0).unwrap();
        assert!((after - 1.0).abs() < 1e-5, "{after}");
    }
}
