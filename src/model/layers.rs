//! The blocks every decoder family here is built from: parameters under checkpoint
//! names, RMSNorm, rotary embeddings, the KV cache, masks, grouped-query attention
//! with optional LoRA adapters, and the SwiGLU MLP. [`super::llama`] and
//! [`super::gemma3`] arrange them into layers.

use super::config::ModelConfig;
use super::family::{Family, NormStyle};
use super::lora::{adapter_input, Projection};
use super::weights::sub_path;
use super::ModelError;
use tch::nn::{self, Init};
use tch::{Device, Kind, Tensor};

/// Standard deviation of the random init (transformers' `initializer_range` default).
pub(crate) const INIT_STD: f64 = 0.02;

/// How parameters are created: random (training from scratch) or as
/// uninitialised placeholders that a checkpoint overwrites.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParamInit {
    Random,
    Placeholder,
}

/// Creates the parameter `dotted` (e.g. `model.norm.weight`) under `root`.
pub(crate) fn param(root: &nn::Path, dotted: &str, shape: &[i64], init: ParamInit, random: Init) -> Result<Tensor, ModelError> {
    let (module, name) = dotted.rsplit_once('.').unwrap_or(("", dotted));
    let path = sub_path(root, module);
    match init {
        ParamInit::Random => Ok(path.f_var(name, shape, random)?),
        // Left uninitialised: on CPU the pages are only touched when the checkpoint's
        // tensor is copied in, so loading holds about one copy of the weights.
        ParamInit::Placeholder => {
            let t = Tensor::f_empty(shape, (path.kind(), path.device()))?;
            Ok(path.add(name, t, true))
        }
    }
}

/// A linear layer named `dotted` (`model.layers.0.mlp.up_proj`): weight [out, in], optional bias.
pub(crate) fn projection(root: &nn::Path, dotted: &str, in_dim: usize, out_dim: usize, bias: bool, init: ParamInit) -> Result<Projection, ModelError> {
    let (i, o) = (in_dim as i64, out_dim as i64);
    let weight = param(root, &format!("{dotted}.weight"), &[o, i], init, Init::Randn { mean: 0.0, stdev: INIT_STD })?;
    let bias = if bias { Some(param(root, &format!("{dotted}.bias"), &[o], init, Init::Const(0.0))?) } else { None };
    Ok(Projection::new(dotted, weight, bias))
}

/// Root-mean-square layer norm: statistics in f32. Llama scales by the weight after casting
/// back to the model's kind; Gemma scales by (1 + weight) in f32, then casts (zero-centred weights).
pub(crate) struct RmsNorm {
    pub(crate) weight: Tensor,
    pub(crate) eps: f64,
    pub(crate) gemma: bool,
}

impl RmsNorm {
    pub(crate) fn new(root: &nn::Path, dotted: &str, dim: usize, eps: f64, init: ParamInit) -> Result<RmsNorm, ModelError> {
        Ok(RmsNorm { weight: param(root, &format!("{dotted}.weight"), &[dim as i64], init, Init::Const(1.0))?, eps, gemma: false })
    }

    /// Gemma's form: y = x / rms(x) · (1 + weight), the weight starting at 0.
    pub(crate) fn gemma(root: &nn::Path, dotted: &str, dim: usize, eps: f64, init: ParamInit) -> Result<RmsNorm, ModelError> {
        Ok(RmsNorm { weight: param(root, &format!("{dotted}.weight"), &[dim as i64], init, Init::Const(0.0))?, eps, gemma: true })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Tensor {
        let kind = x.kind();
        let xf = x.to_kind(Kind::Float);
        let variance = xf.pow_tensor_scalar(2).mean_dim(-1, true, Kind::Float);
        let normed = xf * (variance + self.eps).rsqrt();
        if self.gemma {
            (normed * (self.weight.to_kind(Kind::Float) + 1.0)).to_kind(kind)
        } else {
            &self.weight * normed.to_kind(kind)
        }
    }
}
/// `cos` and `sin` for `positions` [b, t]: [b, 1, t, head_dim] in `kind`, angles in f32.
pub(crate) fn rope_tables(inv_freq: &Tensor, positions: &Tensor, kind: Kind) -> (Tensor, Tensor) {
    let freqs = positions.to_kind(Kind::Float).unsqueeze(-1) * inv_freq; // [b, t, d/2]
    let emb = Tensor::cat(&[&freqs, &freqs], -1).unsqueeze(1);
    (emb.cos().to_kind(kind), emb.sin().to_kind(kind))
}

/// x·cos + rotate_half(x)·sin, rotate_half(x) = [-x2, x1] (transformers' half-split layout).
pub(crate) fn apply_rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
    let half = x.size()[3] / 2;
    let x1 = x.narrow(3, 0, half);
    let x2 = x.narrow(3, half, half);
    let rotated = Tensor::cat(&[&x2.neg(), &x1], -1);
    x * cos + rotated * sin
}

/// Keys and values seen so far, per layer: preallocated buffers
/// [b, kv_heads, capacity, head_dim] written in place, of which the first
/// `len` positions hold data. A buffer grows (doubling) only when a write passes
/// its capacity; [`KvCache::with_capacity`] sizes it once for a known length.
pub struct KvCache {
    pub(crate) layers: Vec<Option<(Tensor, Tensor)>>,
    pub(crate) len: i64,
    pub(crate) capacity: i64,
}

impl KvCache {
    pub fn new(n_layers: usize) -> KvCache {
        KvCache::with_capacity(n_layers, 0)
    }

    /// A cache whose buffers hold `capacity` positions (prompt + new tokens) from the start.
    pub fn with_capacity(n_layers: usize, capacity: usize) -> KvCache {
        KvCache { layers: (0..n_layers).map(|_| None).collect(), len: 0, capacity: capacity as i64 }
    }

    /// Positions cached per row (including padding columns).
    pub fn len(&self) -> i64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps the batch rows `rows` (i64 indices, repeats allowed), in that order:
    /// reorders beams or drops finished sequences.
    pub fn select_rows(&mut self, rows: &Tensor) {
        for (k, v) in self.layers.iter_mut().flatten() {
            let idx = rows.to_device(k.device());
            *k = k.index_select(0, &idx);
            *v = v.index_select(0, &idx);
        }
    }

    pub fn clear(&mut self) {
        self.layers.iter_mut().for_each(|l| *l = None);
        self.len = 0;
    }
}

/// One layer's part of a [`KvCache`] during a forward pass.
pub(crate) struct CacheSlot<'a> {
    pub(crate) kv: &'a mut Option<(Tensor, Tensor)>,
    pub(crate) past: i64,
    pub(crate) capacity: i64,
}

impl CacheSlot<'_> {
    /// Writes the new keys / values [b, kv, t, hd] after the `past` cached ones and
    /// returns views of all `past + t`.
    fn append(self, k: &Tensor, v: &Tensor) -> (Tensor, Tensor) {
        let (b, kv, t, hd) = k.size4().expect("keys are [batch, kv_heads, tokens, head_dim]");
        let need = self.past + t;
        let have = self.kv.as_ref().map_or(0, |(k, _)| k.size()[2]);
        let cap = need.max(self.capacity).max(2 * have);
        let grow = |old: Option<&Tensor>| {
            let buf = Tensor::zeros([b, kv, cap, hd], (k.kind(), k.device()));
            if let Some(old) = old {
                buf.narrow(2, 0, self.past).copy_(&old.narrow(2, 0, self.past));
            }
            buf
        };
        if need > have {
            let old = self.kv.take();
            *self.kv = Some((grow(old.as_ref().map(|o| &o.0)), grow(old.as_ref().map(|o| &o.1))));
        }
        let (kb, vb) = self.kv.get_or_insert_with(|| (grow(None), grow(None)));
        kb.narrow(2, self.past, t).copy_(k);
        vb.narrow(2, self.past, t).copy_(v);
        (kb.narrow(2, 0, need), vb.narrow(2, 0, need))
    }
}

/// Which mask attention uses.
pub(crate) enum Mask {
    /// Every query sees every key (one new token, no padding).
    None,
    /// Plain causal: no cache, no padding (lets libtorch use its fused causal kernel).
    Causal,
    /// Explicit boolean [b or 1, 1, t, past + t], true = may attend.
    Explicit(Tensor),
}

/// Causal + padding mask. A query may attend key j when j <= its own index and
/// key j is a real token. Every query may also attend itself: a left-padding
/// query has no real key before it, and a fully masked row makes softmax NaN,
/// which would poison the whole batch in backward. Real queries never attend
/// padding, so their outputs are unchanged.
pub(crate) fn build_mask(padding: Option<&Tensor>, b: i64, t: i64, past: i64, device: Device) -> Mask {
    let total = past + t;
    let Some(padding) = padding else {
        return match (t, past) {
            (1, _) => Mask::None,
            (_, 0) => Mask::Causal,
            _ => {
                let q = Tensor::arange_start(past, total, (Kind::Int64, device)).view([t, 1]);
                let k = Tensor::arange(total, (Kind::Int64, device)).view([1, total]);
                Mask::Explicit(k.le_tensor(&q).view([1, 1, t, total]))
            }
        };
    };
    assert_eq!(padding.size(), [b, total], "attention_mask must be [batch, cached + new tokens]");
    let q = Tensor::arange_start(past, total, (Kind::Int64, device)).view([1, t, 1]);
    let k = Tensor::arange(total, (Kind::Int64, device)).view([1, 1, total]);
    let real = padding.to_device(device).ne(0).view([b, 1, total]);
    let allowed = k.le_tensor(&q).logical_and(&real).logical_or(&k.eq_tensor(&q));
    Mask::Explicit(allowed.unsqueeze(1))
}

pub(crate) struct Attention {
    pub(crate) q_proj: Projection,
    pub(crate) k_proj: Projection,
    pub(crate) v_proj: Projection,
    pub(crate) o_proj: Projection,
    /// Qwen3: RMSNorm over each head's queries / keys, before RoPE.
    pub(crate) q_norm: Option<RmsNorm>,
    pub(crate) k_norm: Option<RmsNorm>,
    pub(crate) heads: i64,
    pub(crate) kv_heads: i64,
    pub(crate) head_dim: i64,
    /// SDPA's scale when it is not head_dim^-0.5 (Gemma 3).
    pub(crate) scale: Option<f64>,
}

impl Attention {
    pub(crate) fn new(root: &nn::Path, prefix: &str, c: &ModelConfig, family: &Family, init: ParamInit) -> Result<Attention, ModelError> {
        let (h, kv, hd) = (c.num_attention_heads, c.kv_heads(), c.head_dim());
        let qkv_bias = family.qkv_bias || c.attention_bias;
        let o_bias = !family.qkv_bias && c.attention_bias;
        let norm = |name: &str| match family.norm {
            NormStyle::OnePlusWeight => RmsNorm::gemma(root, &format!("{prefix}.{name}"), hd, c.rms_norm_eps, init),
            NormStyle::Weight => RmsNorm::new(root, &format!("{prefix}.{name}"), hd, c.rms_norm_eps, init),
        };
        let (q_norm, k_norm) = if family.qk_norm { (Some(norm("q_norm")?), Some(norm("k_norm")?)) } else { (None, None) };
        Ok(Attention {
            q_proj: projection(root, &format!("{prefix}.q_proj"), c.hidden_size, h * hd, qkv_bias, init)?,
            k_proj: projection(root, &format!("{prefix}.k_proj"), c.hidden_size, kv * hd, qkv_bias, init)?,
            v_proj: projection(root, &format!("{prefix}.v_proj"), c.hidden_size, kv * hd, qkv_bias, init)?,
            o_proj: projection(root, &format!("{prefix}.o_proj"), h * hd, c.hidden_size, o_bias, init)?,
            q_norm,
            k_norm,
            heads: h as i64,
            kv_heads: kv as i64,
            head_dim: hd as i64,
            scale: c.attention_scale(),
        })
    }

    pub(crate) fn forward(&self, x: &Tensor, cos: &Tensor, sin: &Tensor, mask: &Mask, cache: Option<CacheSlot>, train: bool) -> Tensor {
        let (b, t) = (x.size()[0], x.size()[1]);
        // One dropout mask for the three adapters that read `x`.
        let xa = adapter_input(x, self.q_proj.adapter_dropout().max(self.k_proj.adapter_dropout()).max(self.v_proj.adapter_dropout()), train);
        let heads = |p: &Projection, n: i64, norm: &Option<RmsNorm>| {
            let y = p.forward_shared(x, Some(&xa)).view([b, t, n, self.head_dim]);
            let y = match norm {
                Some(norm) => norm.forward(&y),
                None => y,
            };
            y.transpose(1, 2)
        };
        let q = apply_rope(&heads(&self.q_proj, self.heads, &self.q_norm), cos, sin);
        let k = apply_rope(&heads(&self.k_proj, self.kv_heads, &self.k_norm), cos, sin);
        let v = heads(&self.v_proj, self.kv_heads, &None);
        let (k, v) = match cache {
            Some(slot) => slot.append(&k, &v),
            None => (k, v),
        };
        // Grouped-query attention without repeating K/V: SDPA maps each query head to its KV head.
        let gqa = self.heads != self.kv_heads;
        let y = match mask {
            Mask::None => Tensor::scaled_dot_product_attention(&q, &k, &v, None::<&Tensor>, 0.0, false, self.scale, gqa),
            Mask::Causal => Tensor::scaled_dot_product_attention(&q, &k, &v, None::<&Tensor>, 0.0, true, self.scale, gqa),
            Mask::Explicit(m) => Tensor::scaled_dot_product_attention(&q, &k, &v, Some(m), 0.0, false, self.scale, gqa),
        };
        let y = y.transpose(1, 2).reshape([b, t, self.heads * self.head_dim]);
        self.o_proj.forward(&y, train)
    }
}

/// Gated MLP: down(act(gate(x)) * up(x)), act SiLU (SwiGLU) or tanh-approximated GELU (GeGLU, Gemma).
pub(crate) struct Mlp {
    pub(crate) gate_proj: Projection,
    pub(crate) up_proj: Projection,
    pub(crate) down_proj: Projection,
    pub(crate) gelu: bool,
}

impl Mlp {
    pub(crate) fn new(root: &nn::Path, prefix: &str, c: &ModelConfig, init: ParamInit) -> Result<Mlp, ModelError> {
        let (d, f, bias) = (c.hidden_size, c.intermediate_size, c.mlp_bias);
        Ok(Mlp {
            gate_proj: projection(root, &format!("{prefix}.gate_proj"), d, f, bias, init)?,
            up_proj: projection(root, &format!("{prefix}.up_proj"), d, f, bias, init)?,
            down_proj: projection(root, &format!("{prefix}.down_proj"), f, d, bias, init)?,
            gelu: c.activation() != "silu",
        })
    }

    pub(crate) fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let xa = adapter_input(x, self.gate_proj.adapter_dropout().max(self.up_proj.adapter_dropout()), train);
        let gate = self.gate_proj.forward_shared(x, Some(&xa));
        let gate = if self.gelu { gate.gelu("tanh") } else { gate.silu() };
        let gated = gate * self.up_proj.forward_shared(x, Some(&xa));
        self.down_proj.forward(&gated, train)
    }
}

/// RoPE tables and masks of one forward pass: the global ones, and for Gemma 3's
/// sliding-window layers their own (None where they equal the global ones).
pub(crate) struct Context {
    pub(crate) rope: (Tensor, Tensor),
    pub(crate) mask: Mask,
    pub(crate) local_rope: Option<(Tensor, Tensor)>,
    pub(crate) local_mask: Option<Mask>,
}

