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
///
/// Flat: the f32 parameters of one device are moved into one contiguous buffer
/// (each parameter becomes a view of it, `set_data`), and so are their moments,
/// so a step is a handful of kernels over the buffer (gradients gathered by one
/// `cat`, clipping included) instead of a dozen per tensor. Parameters of another
/// kind (bf16 full training) are gathered in f32 and written back. A step in which
/// some parameter has no gradient updates tensor by tensor, skipping it, moments
/// included (as PyTorch does); both paths apply the same operations to each element.
pub(crate) struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// First and second moments, one per parameter, in the parameters' order
    /// (views into the flat moment buffers).
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
    groups: Vec<Group>,
}

/// The parameters of one device, updated as one buffer.
struct Group {
    /// Indices into the parameter list, and each one's (offset, length) in the buffers.
    members: Vec<(usize, i64, i64)>,
    /// The parameters' values when they are f32 (the parameters are views of it); None otherwise.
    values: Option<Tensor>,
    m: Tensor,
    v: Tensor,
    /// Every member is a matrix (weight decay applies to the whole buffer).
    all_matrices: bool,
}

impl AdamW {
    pub(crate) fn new(params: &[(String, Tensor)], betas: (f64, f64), eps: f64, weight_decay: f64) -> Result<AdamW, TchError> {
        let mut devices: Vec<tch::Device> = Vec::new();
        for (_, p) in params {
            if !devices.contains(&p.device()) {
                devices.push(p.device());
            }
        }
        let mut m_views: Vec<Option<Tensor>> = params.iter().map(|_| None).collect();
        let mut v_views: Vec<Option<Tensor>> = params.iter().map(|_| None).collect();
        let mut groups = Vec::new();
        for device in devices {
            let mut members = Vec::new();
            let mut offset = 0i64;
            for (i, (_, p)) in params.iter().enumerate().filter(|(_, (_, p))| p.device() == device) {
                let n = p.numel() as i64;
                members.push((i, offset, n));
                offset += n;
            }
            let all_f32 = members.iter().all(|&(i, _, _)| params[i].1.kind() == Kind::Float);
            let m = Tensor::f_zeros([offset], (Kind::Float, device))?;
            let v = Tensor::f_zeros([offset], (Kind::Float, device))?;
            let values = if all_f32 {
                let flat = tch::no_grad(|| Tensor::f_cat(&members.iter().map(|&(i, _, _)| params[i].1.detach().reshape([-1])).collect::<Vec<_>>(), 0))?;
                for &(i, off, n) in &members {
                    let mut p = params[i].1.shallow_clone();
                    p.f_set_data(&flat.f_narrow(0, off, n)?.f_view(p.size().as_slice())?)?;
                }
                Some(flat)
            } else {
                None
            };
            for &(i, off, n) in &members {
                let shape = params[i].1.size();
                m_views[i] = Some(m.f_narrow(0, off, n)?.f_view(shape.as_slice())?);
                v_views[i] = Some(v.f_narrow(0, off, n)?.f_view(shape.as_slice())?);
            }
            let all_matrices = members.iter().all(|&(i, _, _)| params[i].1.dim() >= 2);
            groups.push(Group { members, values, m, v, all_matrices });
        }
        let m = m_views.into_iter().map(|t| t.unwrap_or_else(Tensor::new)).collect();
        let v = v_views.into_iter().map(|t| t.unwrap_or_else(Tensor::new)).collect();
        Ok(AdamW { beta1: betas.0, beta2: betas.1, eps, weight_decay, m, v, groups })
    }

    /// Clips the gradients' global L2 norm to `max_norm` (0 = no clipping), then
    /// applies update number `t` (1-based, for bias correction) with rate `lr`.
    /// Returns the norm before clipping (PyTorch's `clip_grad_norm_`).
    pub(crate) fn step(&mut self, params: &[(String, Tensor)], t: usize, lr: f64, max_norm: f64) -> Result<f64, TchError> {
        let all_grads = params.iter().all(|(_, p)| p.grad().defined());
        if !all_grads {
            let norm = clip_grad_norm(params, max_norm)?;
            self.step_each(params, t, lr)?;
            return Ok(norm);
        }
        tch::no_grad(|| {
            let grads: Vec<Tensor> = self
                .groups
                .iter()
                .map(|g| Tensor::f_cat(&g.members.iter().map(|&(i, _, _)| params[i].1.grad().to_kind(Kind::Float).reshape([-1])).collect::<Vec<_>>(), 0))
                .collect::<Result<_, _>>()?;
            let norms = grads.iter().map(Tensor::f_norm).collect::<Result<Vec<_>, _>>()?;
            let total = Tensor::f_stack(&norms, 0)?.f_norm()?.f_double_value(&[])?;
            let coef = if max_norm > 0.0 && total.is_finite() { max_norm / (total + 1e-6) } else { 1.0 };
            for (group, mut g) in self.groups.iter().zip(grads) {
                if coef < 1.0 {
                    let _ = g.f_mul_scalar_(coef)?;
                }
                let mut value = match &group.values {
                    Some(v) => v.shallow_clone(),
                    None => Tensor::f_cat(&group.members.iter().map(|&(i, _, _)| params[i].1.to_kind(Kind::Float).reshape([-1])).collect::<Vec<_>>(), 0)?,
                };
                let decay = self.weight_decay > 0.0;
                if decay && group.all_matrices {
                    let _ = value.f_mul_scalar_(1.0 - lr * self.weight_decay)?;
                } else if decay {
                    for &(_, off, n) in group.members.iter().filter(|(i, _, _)| params[*i].1.dim() >= 2) {
                        let _ = value.f_narrow(0, off, n)?.f_mul_scalar_(1.0 - lr * self.weight_decay)?;
                    }
                }
                adam_update(&mut value, &g, &group.m, &group.v, (self.beta1, self.beta2, self.eps), t, lr)?;
                if group.values.is_none() {
                    for &(i, off, n) in &group.members {
                        let mut p = params[i].1.shallow_clone();
                        p.f_copy_(&value.f_narrow(0, off, n)?.f_view(p.size().as_slice())?)?;
                    }
                }
            }
            Ok(total)
        })
    }

    /// The same update tensor by tensor, skipping parameters without a gradient.
    fn step_each(&mut self, params: &[(String, Tensor)], t: usize, lr: f64) -> Result<(), TchError> {
        tch::no_grad(|| -> Result<(), TchError> {
            for (((_, p), m), v) in params.iter().zip(&self.m).zip(&self.v) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let mut value = p.f_to_dtype(Kind::Float, false, true)?.f_detach()?;
                if self.weight_decay > 0.0 && p.dim() >= 2 {
                    let _ = value.f_mul_scalar_(1.0 - lr * self.weight_decay)?;
                }
                adam_update(&mut value, &g.f_to_kind(Kind::Float)?, m, v, (self.beta1, self.beta2, self.eps), t, lr)?;
                p.shallow_clone().f_copy_(&value)?;
            }
            Ok(())
        })
    }
}

/// The moment updates and the step, in place, elementwise (so a buffer and its
/// pieces give the same bits).
fn adam_update(value: &mut Tensor, g: &Tensor, m: &Tensor, v: &Tensor, (b1, b2, eps): (f64, f64, f64), t: usize, lr: f64) -> Result<(), TchError> {
    let bc1 = 1.0 - b1.powi(t as i32);
    let bc2 = 1.0 - b2.powi(t as i32);
    let _ = m.shallow_clone().f_mul_scalar_(b1)?.f_add_(&g.f_mul_scalar(1.0 - b1)?)?;
    let _ = v.shallow_clone().f_mul_scalar_(b2)?.f_addcmul_(g, &g.f_mul_scalar(1.0 - b2)?)?;
    let denom = v.f_div_scalar(bc2)?.f_sqrt()?.f_add_scalar(eps)?;
    let _ = value.f_sub_(&m.f_div(&denom)?.f_mul_scalar(lr / bc1)?)?;
    Ok(())
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
        let _rng = crate::torch_rng_lock();
        // One scalar-ish parameter, two steps, against the formula by hand.
        let p = Tensor::from_slice(&[1.0f32, -2.0]).view([1, 2]).set_requires_grad(true);
        let params = vec![("w".to_string(), p.shallow_clone())];
        let mut opt = AdamW::new(&params, (0.9, 0.999), 1e-8, 0.1).unwrap();
        let (mut w, mut m, mut v) = ([1.0f64, -2.0], [0.0f64; 2], [0.0f64; 2]);
        for t in 1..=2 {
            let loss = (&p * &p).sum(Kind::Float); // grad = 2w
            loss.backward();
            opt.step(&params, t, 0.01, 0.0).unwrap();
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

    /// Parameters of several shapes (matrices and a vector) with fixed gradients.
    fn params_with_grads(seed: i64) -> Vec<(String, Tensor)> {
        tch::manual_seed(seed);
        let shapes: [&[i64]; 3] = [&[3, 4], &[5], &[2, 7]];
        shapes
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let p = Tensor::randn(*s, (Kind::Float, Device::Cpu)).set_requires_grad(true);
                let g = Tensor::randn(*s, (Kind::Float, Device::Cpu));
                (&p * &g).sum(Kind::Float).backward(); // grad = g
                (format!("p{i}"), p)
            })
            .collect()
    }

    #[test]
    fn flat_steps_equal_tensor_by_tensor_steps_bit_for_bit() {
        let _rng = crate::torch_rng_lock();
        let (flat_params, each_params) = (params_with_grads(1), params_with_grads(1));
        let mut flat = AdamW::new(&flat_params, (0.9, 0.99), 1e-8, 0.1).unwrap();
        let mut each = AdamW::new(&each_params, (0.9, 0.99), 1e-8, 0.1).unwrap();
        for t in 1..=3 {
            flat.step(&flat_params, t, 0.01, 0.0).unwrap();
            each.step_each(&each_params, t, 0.01).unwrap();
        }
        for ((n, a), (_, b)) in flat_params.iter().zip(&each_params) {
            assert!(a.equal(b), "{n} differs");
        }
        for (a, b) in flat.m.iter().zip(&each.m).chain(flat.v.iter().zip(&each.v)) {
            assert!(a.equal(b));
        }
        // The parameters are views of one buffer: the update reached them in place.
        assert_eq!(flat.groups.len(), 1);
        assert_eq!(flat.groups[0].values.as_ref().unwrap().numel(), 12 + 5 + 14);
        let before = params_with_grads(1);
        assert!(!flat_params[0].1.equal(&before[0].1));
    }

    #[test]
    fn a_parameter_without_gradient_is_skipped() {
        let _rng = crate::torch_rng_lock();
        let mut params = params_with_grads(2);
        // A parameter the loss never used: no gradient at all.
        params[1].1 = Tensor::from_slice(&[0.5f32; 5]).set_requires_grad(true);
        let mut opt = AdamW::new(&params, (0.9, 0.999), 1e-8, 0.0).unwrap();
        opt.step(&params, 1, 0.1, 0.0).unwrap();
        let p1: Vec<f32> = Vec::try_from(params[1].1.detach()).unwrap();
        assert_eq!(p1, [0.5f32; 5], "no gradient: no update");
        assert_eq!(opt.v[1].abs().sum(Kind::Float).double_value(&[]), 0.0);
        assert!(opt.v[0].abs().sum(Kind::Float).double_value(&[]) > 0.0);
    }
}
