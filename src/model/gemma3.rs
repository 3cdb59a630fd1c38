//! Gemma 3 (text) as transformers' `Gemma3ForCausalLM` computes it:
//!
//! - embeddings multiplied by √hidden, the factor rounded to the weights' kind first;
//! - RMSNorm with (1 + weight), computed in f32 before the cast back;
//! - four norms per layer, around attention and around the MLP:
//!   `h += post_attn_norm(attn(input_norm(h)))`, `h += post_ff_norm(mlp(pre_ff_norm(h)))`;
//! - per-head q/k norms before RoPE; attention scaled by `query_pre_attn_scalar^-0.5`;
//! - GeGLU with tanh-approximated GELU;
//! - sliding-window (local) layers, each query seeing itself and the `sliding_window - 1`
//!   keys before it, with their own RoPE base; every sixth layer (or as `layer_types`
//!   says) global, with the config's RoPE (and its scaling);
//! - tied output embeddings (the lm_head is the raw embedding matrix).
//!
//! The projections, attention and MLP are the shared blocks ([`super::layers`]); this
//! file holds what Gemma adds. Weight names are the checkpoint's
//! (`model.layers.0.pre_feedforward_layernorm.weight`).

use super::config::ModelConfig;
use super::family::Family;
use super::layers::{Attention, CacheSlot, Context, Mask, Mlp, ParamInit, RmsNorm};
use super::ModelError;
use tch::nn;
use tch::{Device, Kind, Tensor};

pub(crate) struct Gemma3Layer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    pre_feedforward_layernorm: RmsNorm,
    mlp: Mlp,
    post_feedforward_layernorm: RmsNorm,
    /// Attends within the sliding window, with the local RoPE.
    sliding: bool,
}

impl Gemma3Layer {
    pub(crate) fn new(root: &nn::Path, prefix: &str, c: &ModelConfig, family: &Family, sliding: bool, init: ParamInit) -> Result<Gemma3Layer, ModelError> {
        let norm = |name: &str| RmsNorm::gemma(root, &format!("{prefix}.{name}"), c.hidden_size, c.rms_norm_eps, init);
        Ok(Gemma3Layer {
            input_layernorm: norm("input_layernorm")?,
            self_attn: Attention::new(root, &format!("{prefix}.self_attn"), c, family, init)?,
            post_attention_layernorm: norm("post_attention_layernorm")?,
            pre_feedforward_layernorm: norm("pre_feedforward_layernorm")?,
            mlp: Mlp::new(root, &format!("{prefix}.mlp"), c, init)?,
            post_feedforward_layernorm: norm("post_feedforward_layernorm")?,
            sliding,
        })
    }

    pub(crate) fn forward(&self, h: &Tensor, ctx: &Context, cache: Option<CacheSlot>, train: bool) -> Tensor {
        let (rope, mask) = match (self.sliding, &ctx.local_rope) {
            (true, Some(local)) => (local, ctx.local_mask.as_ref().unwrap_or(&ctx.mask)),
            _ => (&ctx.rope, &ctx.mask),
        };
        let attn = self.self_attn.forward(&self.input_layernorm.forward(h), &rope.0, &rope.1, mask, cache, train);
        let h = h + self.post_attention_layernorm.forward(&attn);
        let mlp = self.mlp.forward(&self.pre_feedforward_layernorm.forward(&h), train);
        &h + self.post_feedforward_layernorm.forward(&mlp)
    }

    pub(crate) fn parts(&self) -> (&Attention, &Mlp) {
        (&self.self_attn, &self.mlp)
    }

    pub(crate) fn parts_mut(&mut self) -> (&mut Attention, &mut Mlp) {
        (&mut self.self_attn, &mut self.mlp)
    }
}

/// √hidden as a 0-dim tensor in `kind`: transformers keeps the factor in f32 and casts it
/// to the weights' dtype before multiplying (in bf16, √640 = 25.298 becomes 25.25).
pub(crate) fn embed_scale(hidden: usize, kind: Kind, device: Device) -> Tensor {
    Tensor::from((hidden as f64).sqrt() as f32).to_kind(kind).to_device(device)
}

/// The sliding layers' mask when the window cuts anything: query q (at position past + i)
/// may attend key k when k <= q, k > q - window and k is a real token, and always itself.
/// None when every query's keys fit in the window (the global mask is the same then).
/// Positions are cache columns, as in transformers: with left padding the window counts
/// padding columns, which only ever lie before a row's first real token.
pub(crate) fn window_mask(padding: Option<&Tensor>, b: i64, t: i64, past: i64, window: i64, device: Device) -> Option<Mask> {
    let total = past + t;
    if total <= window {
        return None;
    }
    let q = Tensor::arange_start(past, total, (Kind::Int64, device)).view([1, t, 1]);
    let k = Tensor::arange(total, (Kind::Int64, device)).view([1, 1, total]);
    let mut allowed = k.le_tensor(&q).logical_and(&k.gt_tensor(&(&q - window)));
    if let Some(padding) = padding {
        let real = padding.to_device(device).ne(0).view([b, 1, total]);
        allowed = allowed.logical_and(&real);
    }
    Some(Mask::Explicit(allowed.logical_or(&k.eq_tensor(&q)).unsqueeze(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(m: Option<Mask>) -> Vec<Vec<bool>> {
        let Some(Mask::Explicit(m)) = m else { panic!("expected an explicit mask") };
        let m = m.squeeze_dim(1).select(0, 0);
        (0..m.size()[0]).map(|i| Vec::<bool>::try_from(m.get(i)).unwrap()).collect()
    }

    #[test]
    fn the_window_holds_a_query_and_the_keys_just_before_it() {
        assert!(window_mask(None, 1, 3, 0, 3, Device::Cpu).is_none(), "three keys fit a window of three");
        // Window 3, 5 positions: query 4 sees 2, 3, 4 (not 1: 1 > 4 - 3 fails).
        let m = allowed(window_mask(None, 1, 5, 0, 3, Device::Cpu));
        assert_eq!(m[4], vec![false, false, true, true, true]);
        assert_eq!(m[1], vec![true, true, false, false, false]);
        // A decoding step after 6 cached positions sees the last two and itself.
        let m = allowed(window_mask(None, 1, 1, 6, 3, Device::Cpu));
        assert_eq!(m[0], vec![false, false, false, false, true, true, true]);
        // Left padding: padding keys are never seen, a padding query sees itself.
        let pad = Tensor::from_slice(&[0i64, 0, 1, 1, 1]).view([1, 5]);
        let m = allowed(window_mask(Some(&pad), 1, 5, 0, 3, Device::Cpu));
        assert_eq!(m[0], vec![true, false, false, false, false]);
        assert_eq!(m[4], vec![false, false, true, true, true]);
    }

    #[test]
    fn the_embedding_factor_is_rounded_to_the_kind() {
        assert_eq!(embed_scale(640, Kind::BFloat16, Device::Cpu).to_kind(Kind::Float).double_value(&[]), 25.25);
        assert!((embed_scale(640, Kind::Float, Device::Cpu).double_value(&[]) - 640f64.sqrt()).abs() < 1e-5);
    }
}
