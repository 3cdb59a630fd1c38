//! One decoder-only transformer for the Llama, Qwen2 and Qwen3 families:
//! RMSNorm, rotary position embeddings (default, linear and Llama 3.1 scaling),
//! grouped-query attention, SwiGLU MLP, tied or untied output embeddings.
//!
//! Parameters live in a `tch::nn::VarStore` under the checkpoint's own names
//! (`model.layers.0.self_attn.q_proj.weight`), so loading is a walk over the
//! store's variables. The families differ only in small switches:
//! Qwen2 puts biases on q/k/v; Qwen3 normalises each head's queries and keys
//! before RoPE and may have a head size other than hidden / heads.
//!
//! Dtype policy: compute in the VarStore's kind (f32 on CPU, bf16 on CUDA);
//! RMSNorm statistics and the RoPE angles in f32, as transformers does; logits
//! are returned in f32.

use super::config::{ConfigError, ModelConfig, RopeScaling};
use super::family::{Family, LayerKind};
use super::gemma3::{self, Gemma3Layer};
use super::layers::{ParamInit, param, RmsNorm, rope_tables, CacheSlot, Mask, build_mask, Attention, Mlp, Context, INIT_STD};
use super::lora::{LoraConfig, Projection};
use super::weights::{load_safetensors, read_config, WeightMap};
use super::ModelError;
pub use super::layers::KvCache;
use std::path::Path;
use tch::nn::{self, Init};
use tch::{Device, Kind, Reduction, TchError, Tensor};


/// RoPE inverse frequencies, `[head_dim / 2]` f32, computed with the same f32
/// tensor operations, in the same order, as transformers' `rope_init_fn`s
/// (`_compute_default_rope_parameters`, `..._linear_...`, `..._llama3_...`), so
/// band edges fall where they fall there.
pub fn rope_inv_freq(config: &ModelConfig, device: Device) -> Result<Tensor, ConfigError> {
    inv_freq_of(&config.rope(), config, config.rope_freq_factors.as_deref(), device)
}

/// Gemma 3's sliding-window layers' inverse frequencies (their own base, never scaled).
pub fn rope_inv_freq_local(config: &ModelConfig, device: Device) -> Result<Tensor, ConfigError> {
    inv_freq_of(&config.rope_local(), config, None, device)
}

fn inv_freq_of(rope: &RopeScaling, config: &ModelConfig, factors: Option<&[f32]>, device: Device) -> Result<Tensor, ConfigError> {
    let base = rope.rope_theta.unwrap_or(10_000.0);
    let dim = config.head_dim() as i64;
    let exponent = Tensor::arange_start_step(0i64, dim, 2, (Kind::Int64, device)).to_kind(Kind::Float) / dim as f64;
    // Python's `1.0 / t` is `t.reciprocal() * 1.0`.
    let inv_freq = Tensor::pow_scalar(base, &exponent).reciprocal();
    // llama.cpp's form of Llama 3.1's scaling: factors divide the default frequencies (and replace
    // the llama3 rule they were computed from); a linear factor still applies on top.
    if let Some(factors) = factors {
        if factors.len() as i64 * 2 != dim {
            return Err(ConfigError::Inconsistent(format!("{} RoPE frequency factors for a head of {dim} dimensions", factors.len())));
        }
        let scaled = inv_freq / Tensor::from_slice(factors).to_device(device);
        return match rope.rope_type.as_deref() {
            Some("linear") => Ok(scaled / rope.factor.unwrap_or(1.0)),
            _ => Ok(scaled),
        };
    }
    let need = |v: Option<f64>, key: &str| v.ok_or_else(|| ConfigError::Inconsistent(format!("rope_type {:?} needs `{key}`", rope.rope_type.as_deref().unwrap_or(""))));
    match rope.rope_type.as_deref() {
        None | Some("default") => Ok(inv_freq),
        Some("linear") => Ok(inv_freq / need(rope.factor, "factor")?),
        Some("llama3") => {
            let factor = need(rope.factor, "factor")?;
            let low = need(rope.low_freq_factor, "low_freq_factor")?;
            let high = need(rope.high_freq_factor, "high_freq_factor")?;
            let old_ctx = need(rope.original_max_position_embeddings.map(|v| v as f64), "original_max_position_embeddings")?;
            if high == low {
                return Err(ConfigError::Inconsistent("rope_scaling: high_freq_factor equals low_freq_factor".into()));
            }
            let low_freq_wavelen = old_ctx / low;
            let high_freq_wavelen = old_ctx / high;
            // wavelen = 2π / inv_freq, i.e. reciprocal() * 2π in torch.
            let wavelen = inv_freq.reciprocal() * (2.0 * std::f64::consts::PI);
            // Long wavelengths (low frequencies) are divided by `factor` ...
            let scaled = (&inv_freq / factor).where_self(&wavelen.gt(low_freq_wavelen), &inv_freq);
            // ... short ones are kept, and the band between is interpolated.
            let smooth = (wavelen.reciprocal() * old_ctx - low) / (high - low);
            let smoothed = smooth.rsub_scalar(1.0) * &scaled / factor + &smooth * &scaled;
            let medium = wavelen.lt(high_freq_wavelen).logical_not().logical_and(&wavelen.gt(low_freq_wavelen).logical_not());
            Ok(smoothed.where_self(&medium, &scaled))
        }
        Some(other) => Err(ConfigError::Rope(other.to_string())),
    }
}

struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl DecoderLayer {
    /// `h + attn(norm(h))`, then the same with the MLP.
    fn forward(&self, h: &Tensor, cos: &Tensor, sin: &Tensor, mask: &Mask, cache: Option<CacheSlot>, train: bool) -> Tensor {
        let h = h + self.self_attn.forward(&self.input_layernorm.forward(h), cos, sin, mask, cache, train);
        let mlp = self.mlp.forward(&self.post_attention_layernorm.forward(&h), train);
        h + mlp
    }
}

/// A layer of any family.
enum Layer {
    Llama(DecoderLayer),
    Gemma3(Gemma3Layer),
}

impl Layer {
    fn forward(&self, h: &Tensor, ctx: &Context, cache: Option<CacheSlot>, train: bool) -> Tensor {
        match self {
            Layer::Llama(l) => l.forward(h, &ctx.rope.0, &ctx.rope.1, &ctx.mask, cache, train),
            Layer::Gemma3(l) => l.forward(h, ctx, cache, train),
        }
    }

    fn parts(&self) -> (&Attention, &Mlp) {
        match self {
            Layer::Llama(l) => (&l.self_attn, &l.mlp),
            Layer::Gemma3(l) => l.parts(),
        }
    }

    fn parts_mut(&mut self) -> (&mut Attention, &mut Mlp) {
        match self {
            Layer::Llama(l) => (&mut l.self_attn, &mut l.mlp),
            Layer::Gemma3(l) => l.parts_mut(),
        }
    }
}

/// A decoder-only causal language model (Llama, Qwen2, Qwen3, Gemma 3).
pub struct CausalLM {
    pub config: ModelConfig,
    pub family: &'static Family,
    embed_tokens: Tensor,
    /// Gemma: embeddings are multiplied by √hidden, rounded to the weights' kind.
    embed_scale: Option<Tensor>,
    layers: Vec<Layer>,
    norm: RmsNorm,
    /// `None` when the output projection is tied to `embed_tokens`.
    lm_head: Option<Tensor>,
    inv_freq: Tensor,
    /// Gemma 3's sliding-window layers: their inverse frequencies and window.
    local: Option<(Tensor, i64)>,
    device: Device,
    pub(crate) lora: Option<LoraConfig>,
}

impl CausalLM {
    /// Random init (tiny models for tests / from-scratch training), params in `vs`.
    pub fn new(vs: &nn::Path, config: &ModelConfig) -> Result<CausalLM, ModelError> {
        Self::build(vs, config, ParamInit::Random, "model config")
    }

    /// Builds in `vs` (its device/kind) and fills every parameter from `weights`.
    ///
    /// `vs` must be empty: its variables are exactly the model's, each taken from
    /// `weights` by name (shape checked, converted to `vs`'s kind and device). A
    /// name missing from `weights`, or a weight left over, is an error naming the
    /// checkpoint. To keep one copy of a large model on a GPU, set `vs`'s kind
    /// first, load `weights` to the CPU and let this copy them over one by one.
    /// Parameters start uninitialised: after an error, drop `vs`.
    pub fn load(vs: &mut nn::VarStore, config: &ModelConfig, weights: &mut WeightMap) -> Result<CausalLM, ModelError> {
        let origin = weights.origin().to_string();
        if !vs.is_empty() {
            return Err(ModelError::file(&origin, format!("cannot load into a VarStore that already holds {} variables", vs.len())));
        }
        let model = Self::build(&vs.root(), config, ParamInit::Placeholder, &origin)?;
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, mut var) in vars {
            let w = weights.take_shaped(&name, &var.size())?;
            tch::no_grad(|| var.f_copy_(&w))?;
        }
        // Tied checkpoints sometimes store lm_head anyway; old ones store RoPE buffers.
        if config.tie_word_embeddings && weights.contains("lm_head.weight") {
            drop(weights.take("lm_head.weight")?);
        }
        let buffers: Vec<String> = weights.remaining().into_iter().filter(|n| n.ends_with(".rotary_emb.inv_freq")).map(String::from).collect();
        for name in buffers {
            drop(weights.take(&name)?);
        }
        if !weights.is_empty() {
            let left = weights.remaining();
            let shown: Vec<&str> = left.iter().take(5).copied().collect();
            let more = if left.len() > 5 { format!(" and {} more", left.len() - 5) } else { String::new() };
            return Err(ModelError::file(
                &origin,
                format!("{} weights the {} model does not use: {}{more} (is config.json the checkpoint's own?)", left.len(), model.family, shown.join(", ")),
            ));
        }
        Ok(model)
    }

    /// A Hugging Face checkpoint folder (config.json + safetensors) on `device` in
    /// `kind`; the weights pass through host memory one tensor at a time.
    pub fn from_pretrained(dir: &Path, device: Device, kind: Kind) -> Result<(nn::VarStore, CausalLM), ModelError> {
        let config = read_config(dir)?;
        let mut weights = load_safetensors(dir, kind, Device::Cpu)?;
        let mut vs = nn::VarStore::new(device);
        vs.set_kind(kind);
        let model = CausalLM::load(&mut vs, &config, &mut weights)?;
        Ok((vs, model))
    }

    fn build(vs: &nn::Path, config: &ModelConfig, init: ParamInit, origin: &str) -> Result<CausalLM, ModelError> {
        let config_err = |source| ModelError::Config { origin: origin.to_string(), source };
        let family = config.validate().map_err(config_err)?;
        let inv_freq = rope_inv_freq(config, vs.device()).map_err(config_err)?;
        let (vocab, d) = (config.vocab_size as i64, config.hidden_size as i64);
        let random = Init::Randn { mean: 0.0, stdev: INIT_STD };
        let embed_tokens = param(vs, "model.embed_tokens.weight", &[vocab, d], init, random)?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("model.layers.{i}");
            layers.push(match family.layer {
                LayerKind::Gemma3 => Layer::Gemma3(Gemma3Layer::new(vs, &p, config, family, config.layer_is_sliding(i), init)?),
                LayerKind::Llama => Layer::Llama(DecoderLayer {
                    input_layernorm: RmsNorm::new(vs, &format!("{p}.input_layernorm"), config.hidden_size, config.rms_norm_eps, init)?,
                    self_attn: Attention::new(vs, &format!("{p}.self_attn"), config, family, init)?,
                    post_attention_layernorm: RmsNorm::new(vs, &format!("{p}.post_attention_layernorm"), config.hidden_size, config.rms_norm_eps, init)?,
                    mlp: Mlp::new(vs, &format!("{p}.mlp"), config, init)?,
                }),
            });
        }
        let (norm, embed_scale, local) = match family.layer {
            LayerKind::Gemma3 => {
                let local_inv = rope_inv_freq_local(config, vs.device()).map_err(config_err)?;
                let window = config.sliding_window.unwrap_or(0) as i64;
                (
                    RmsNorm::gemma(vs, "model.norm", config.hidden_size, config.rms_norm_eps, init)?,
                    Some(gemma3::embed_scale(config.hidden_size, vs.kind(), vs.device())),
                    Some((local_inv, window)),
                )
            }
            LayerKind::Llama => (RmsNorm::new(vs, "model.norm", config.hidden_size, config.rms_norm_eps, init)?, None, None),
        };
        let lm_head = if config.tie_word_embeddings { None } else { Some(param(vs, "lm_head.weight", &[vocab, d], init, random)?) };
        Ok(CausalLM { config: config.clone(), family, embed_tokens, embed_scale, layers, norm, lm_head, inv_freq, local, device: vs.device(), lora: None })
    }

    /// input_ids [b,t] i64; positions [b,t] i64 (explicit, so left padding works);
    /// attention_mask: Option<&Tensor> [b, past+t] with 1 for real tokens, 0 for padding (None = all real);
    /// cache: KV cache updated in place when given; train: dropout on (LoRA dropout).
    /// Returns logits [b, t, vocab] in f32.
    pub fn forward(&self, input_ids: &Tensor, positions: &Tensor, attention_mask: Option<&Tensor>, cache: Option<&mut KvCache>, train: bool) -> Tensor {
        let h = self.trunk(input_ids, positions, attention_mask, cache, train);
        self.logits(&h)
    }

    /// As [`CausalLM::forward`] without training, returning only the last
    /// position's logits [b, vocab]: what prefill and each decoding step need.
    pub fn forward_last(&self, input_ids: &Tensor, positions: &Tensor, attention_mask: Option<&Tensor>, cache: Option<&mut KvCache>) -> Tensor {
        let h = self.trunk(input_ids, positions, attention_mask, cache, false);
        self.logits(&h.select(1, -1))
    }

    /// The final norm and the output projection; logits in f32.
    fn logits(&self, h: &Tensor) -> Tensor {
        let head = self.lm_head.as_ref().unwrap_or(&self.embed_tokens);
        let logits = self.norm.forward(h).linear(head, None::<&Tensor>).to_kind(Kind::Float);
        match self.config.final_logit_softcapping {
            Some(c) => (logits / c).tanh() * c,
            None => logits,
        }
    }

    /// RoPE tables and masks for a pass over `t` new positions after `past` cached ones.
    fn context(&self, positions: &Tensor, kind: Kind, padding: Option<&Tensor>, b: i64, t: i64, past: i64) -> Context {
        let positions = positions.to_device(self.device);
        let rope = rope_tables(&self.inv_freq, &positions, kind);
        let mask = build_mask(padding, b, t, past, self.device);
        let (local_rope, local_mask) = match &self.local {
            Some((inv, window)) => (Some(rope_tables(inv, &positions, kind)), gemma3::window_mask(padding, b, t, past, *window, self.device)),
            None => (None, None),
        };
        Context { rope, mask, local_rope, local_mask }
    }

    /// Embedding and decoder layers: the hidden states before the final norm, [b, t, hidden].
    fn trunk(&self, input_ids: &Tensor, positions: &Tensor, attention_mask: Option<&Tensor>, mut cache: Option<&mut KvCache>, train: bool) -> Tensor {
        let (b, t) = input_ids.size2().expect("input_ids must be [batch, tokens]");
        let past = cache.as_ref().map_or(0, |c| c.len());
        if let Some(c) = cache.as_deref_mut() {
            if c.layers.len() < self.layers.len() {
                c.layers.resize_with(self.layers.len(), || None);
            }
        }
        let mut h = self.embed(input_ids);
        let ctx = self.context(positions, h.kind(), attention_mask, b, t, past);
        for (i, layer) in self.layers.iter().enumerate() {
            let slot = cache.as_deref_mut().map(|c| CacheSlot { kv: &mut c.layers[i], past, capacity: c.capacity });
            h = layer.forward(&h, &ctx, slot, train);
        }
        if let Some(c) = cache {
            c.len = past + t;
        }
        h
    }

    fn embed(&self, input_ids: &Tensor) -> Tensor {
        let e = Tensor::embedding(&self.embed_tokens, &input_ids.to_device(self.device), -1, false, false);
        match &self.embed_scale {
            Some(s) => e * s,
            None => e,
        }
    }

    /// Summed next-token cross-entropy over the labelled positions of a right-padded
    /// batch (no mask, no dropout, no gradients kept): validation. `labels` is
    /// [b, t - 1], label j being the token at j + 1 or [`IGNORE_INDEX`].
    /// Returns the sum and the number of labelled positions.
    pub fn labelled_loss(&self, input_ids: &Tensor, positions: &Tensor, labels: &Tensor) -> Result<(f64, i64), TchError> {
        tch::no_grad(|| {
            let h = self.trunk(input_ids, positions, None, None, false);
            let (x, y, _) = labelled_rows(&h, &labels.to_device(self.device))?;
            let mut sum = 0.0;
            for (x, y) in loss_chunks(&x, &y, loss_chunk(self.config.vocab_size)) {
                sum += self.logits(&x).f_cross_entropy_loss::<Tensor>(&y, None, Reduction::Sum, IGNORE_INDEX, 0.0)?.f_double_value(&[])?;
            }
            Ok((sum, y.size()[0]))
        })
    }

    /// One micro-batch of training: forward with dropout, the summed next-token loss
    /// over the labelled positions (as [`CausalLM::labelled_loss`]), and backward of
    /// `grad_scale ×` that sum, accumulating into the trainable tensors' gradients.
    /// Returns the summed loss.
    ///
    /// Memory: logits exist only for labelled positions, [`loss_chunk`] of them at a
    /// time. With `checkpointing`, each layer keeps only its input during the
    /// forward and is recomputed during backward, layer by layer, so one layer's
    /// activations are alive at a time.
    ///
    /// Exactness: dropout is reseeded per layer from `seed` ([`layer_seed`]), so the
    /// recomputation draws the masks the forward drew and both modes give the same
    /// loss and gradients.
    pub fn forward_backward(&self, input_ids: &Tensor, positions: &Tensor, labels: &Tensor, grad_scale: f64, seed: i64, checkpointing: bool) -> Result<f64, TchError> {
        let (b, t) = input_ids.size2()?;
        let h0 = self.embed(input_ids);
        let ctx = self.context(positions, h0.kind(), None, b, t, 0);
        let run_layer = |i: usize, layer: &Layer, h: &Tensor| {
            tch::manual_seed(layer_seed(seed, i));
            layer.forward(h, &ctx, None, true)
        };
        let mut inputs = Vec::new();
        let top = if checkpointing {
            // Each layer's graph is dropped as soon as its output is detached. The forward
            // runs with autograd on, as the recomputation will, so both take the same
            // kernels and the recomputed activations are bit-identical.
            let mut h = h0.detach();
            for (i, layer) in self.layers.iter().enumerate() {
                let next = run_layer(i, layer, &h).detach();
                inputs.push(std::mem::replace(&mut h, next));
            }
            h
        } else {
            self.layers.iter().enumerate().fold(h0.shallow_clone(), |h, (i, layer)| run_layer(i, layer, &h))
        };

        // The head, on labelled rows only, chunk by chunk; its gradient is gathered at `rows`.
        let (x, y, rows) = labelled_rows(&top.detach(), &labels.to_device(self.device))?;
        let x = x.f_detach()?.set_requires_grad(true);
        let mut sum = 0.0;
        for (xc, yc) in loss_chunks(&x, &y, loss_chunk(self.config.vocab_size)) {
            let loss = self.logits(&xc).f_cross_entropy_loss::<Tensor>(&yc, None, Reduction::Sum, IGNORE_INDEX, 0.0)?;
            sum += loss.f_double_value(&[])?;
            if loss.requires_grad() {
                loss.f_mul_scalar(grad_scale)?.f_backward()?;
            }
        }
        let gx = x.grad();
        if !gx.defined() {
            return Ok(sum); // nothing labelled, or nothing trainable
        }
        let d = top.size3()?.2;
        let mut g = Tensor::f_zeros([b * t, d], (top.kind(), top.device()))?;
        g = g.f_index_copy(0, &rows, &gx.f_to_kind(top.kind())?)?.f_view([b, t, d])?;

        if !checkpointing {
            backward_with(&top, &g)?;
            return Ok(sum);
        }
        for (i, layer) in self.layers.iter().enumerate().rev() {
            let x = inputs[i].f_detach()?.set_requires_grad(true);
            let y = run_layer(i, layer, &x);
            backward_with(&y, &g)?;
            g = x.grad();
            if !g.defined() {
                return Ok(sum);
            }
        }
        backward_with(&h0, &g)?;
        Ok(sum)
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// The adapters' configuration, once LoRA is attached.
    pub fn lora_config(&self) -> Option<&LoraConfig> {
        self.lora.as_ref()
    }

    /// Every linear projection of every layer, in layer order.
    pub(crate) fn projections_mut(&mut self) -> impl Iterator<Item = &mut Projection> {
        self.layers.iter_mut().flat_map(|l| {
            let (a, m) = l.parts_mut();
            [&mut a.q_proj, &mut a.k_proj, &mut a.v_proj, &mut a.o_proj, &mut m.gate_proj, &mut m.up_proj, &mut m.down_proj]
        })
    }

    pub(crate) fn projections(&self) -> impl Iterator<Item = &Projection> {
        self.layers.iter().flat_map(|l| {
            let (a, m) = l.parts();
            [&a.q_proj, &a.k_proj, &a.v_proj, &a.o_proj, &m.gate_proj, &m.up_proj, &m.down_proj]
        })
    }
}

/// Label of a position that is not scored (prompt, padding), as in PyTorch.
pub const IGNORE_INDEX: i64 = -100;

/// Labelled positions whose logits are computed at once: at most 1,024, and at most
/// 2^26 logits (256 MB in f32): 1,024 rows for SmolLM2's 49k vocabulary, 523 for
/// Llama 3's 128k, 256 for Gemma 3's 262k.
pub fn loss_chunk(vocab: usize) -> i64 {
    ((1i64 << 26) / vocab.max(1) as i64).clamp(64, 1024)
}

/// Seed of layer `layer`'s dropout masks in a micro-batch seeded `seed`.
pub fn layer_seed(seed: i64, layer: usize) -> i64 {
    let mut z = (seed as u64) ^ ((layer as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 1) as i64
}

/// The hidden states [n, d] of the positions `labels` [b, t - 1] scores, their labels [n]
/// and their row indices in `h` [b, t, d] viewed as [b·t, d] (label j of row r scores position r·t + j).
fn labelled_rows(h: &Tensor, labels: &Tensor) -> Result<(Tensor, Tensor, Tensor), TchError> {
    let (_, t, d) = h.size3()?;
    let flat = labels.f_reshape([-1])?;
    let idx = flat.f_ne(IGNORE_INDEX)?.f_nonzero()?.f_squeeze_dim(1)?;
    let rows = &idx + idx.f_div_scalar_mode(t - 1, "floor")?;
    let x = h.f_reshape([-1, d])?.f_index_select(0, &rows)?;
    Ok((x, flat.f_index_select(0, &idx)?, rows))
}

/// `x` [n, d] and `y` [n] in pieces of at most `chunk` rows.
fn loss_chunks<'a>(x: &'a Tensor, y: &'a Tensor, chunk: i64) -> impl Iterator<Item = (Tensor, Tensor)> + 'a {
    let n = y.size()[0];
    (0..n).step_by(chunk as usize).map(move |s| {
        let len = chunk.min(n - s);
        (x.narrow(0, s, len), y.narrow(0, s, len))
    })
}

/// Backward from `y` with incoming gradient `g` (same shape): `sum(y · g)`'s gradient
/// with respect to `y` is exactly `g`. A `y` outside autograd has nothing to do.
fn backward_with(y: &Tensor, g: &Tensor) -> Result<(), TchError> {
    if y.requires_grad() {
        y.f_mul(g)?.f_sum(y.kind())?.f_backward()?;
    }
    Ok(())
}

/// Positions for a (left- or right-) padded batch: each real token's index among
/// its row's real tokens; padding gets 0. `attention_mask` is [b, L] (1 = real).
pub fn positions_from_mask(attention_mask: &Tensor) -> Tensor {
    let m = attention_mask.to_kind(Kind::Int64);
    (m.cumsum(1, Kind::Int64) - 1).clamp_min(0) * &m
}

/// A tiny Llama config (2 layers, hidden 64, 4 heads / 2 KV heads, FFN 128) for
/// tests and from-scratch experiments.
pub fn tiny_config(vocab_size: usize) -> ModelConfig {
    ModelConfig {
        architectures: vec!["LlamaForCausalLM".into()],
        model_type: "llama".into(),
        vocab_size,
        hidden_size: 64,
        intermediate_size: 128,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: Some(2),
        head_dim: None,
        rms_norm_eps: 1e-6,
        rope_theta: Some(10_000.0),
        rope_scaling: None,
        rope_parameters: None,
        max_position_embeddings: 2048,
        tie_word_embeddings: false,
        attention_bias: false,
        mlp_bias: false,
        hidden_act: "silu".into(),
        hidden_activation: None,
        query_pre_attn_scalar: None,
        sliding_window: None,
        layer_types: None,
        sliding_window_pattern: None,
        rope_local_base_freq: None,
        final_logit_softcapping: None,
        attn_logit_softcapping: None,
        bos_token_id: None,
        eos_token_id: None,
        pad_token_id: None,
        rope_freq_factors: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_lets_padding_queries_see_themselves_only() {
        // Row 0: two left pads then two tokens; row 1: four tokens.
        let pad = Tensor::from_slice(&[0i64, 0, 1, 1, 1, 1, 1, 1]).view([2, 4]);
        let Mask::Explicit(m) = build_mask(Some(&pad), 2, 4, 0, Device::Cpu) else { panic!("expected an explicit mask") };
        let m: Vec<i64> = Vec::try_from(m.to_kind(Kind::Int64).view([-1])).unwrap();
        #[rustfmt::skip]
        let expected = [
            1, 0, 0, 0,  0, 1, 0, 0,  0, 0, 1, 0,  0, 0, 1, 1,
            1, 0, 0, 0,  1, 1, 0, 0,  1, 1, 1, 0,  1, 1, 1, 1,
        ];
        assert_eq!(m, expected);
    }

    #[test]
    fn mask_with_cache_offsets_queries() {
        let Mask::Explicit(m) = build_mask(None, 1, 2, 3, Device::Cpu) else { panic!("expected an explicit mask") };
        let m: Vec<i64> = Vec::try_from(m.to_kind(Kind::Int64).view([-1])).unwrap();
        assert_eq!(m, [1, 1, 1, 1, 0, 1, 1, 1, 1, 1]);
        assert!(matches!(build_mask(None, 1, 1, 3, Device::Cpu), Mask::None));
        assert!(matches!(build_mask(None, 1, 5, 0, Device::Cpu), Mask::Causal));
    }

    #[test]
    fn positions_skip_left_padding() {
        let pad = Tensor::from_slice(&[0i64, 0, 1, 1, 1, 1, 1, 0]).view([2, 4]);
        let p: Vec<i64> = Vec::try_from(positions_from_mask(&pad).view([-1])).unwrap();
        assert_eq!(p, [0, 0, 0, 1, 0, 1, 2, 0]);
    }

    #[test]
    fn default_inv_freq_is_theta_power() {
        let c = tiny_config(10); // head_dim 16, theta 1e4
        let f: Vec<f32> = Vec::try_from(rope_inv_freq(&c, Device::Cpu).unwrap()).unwrap();
        assert_eq!(f.len(), 8);
        for (i, v) in f.iter().enumerate() {
            let want = 10_000f64.powf(-(2.0 * i as f64) / 16.0);
            assert!((*v as f64 - want).abs() <= want * 1e-6, "{i}: {v} vs {want}");
        }
    }

    #[test]
    fn rope_type_needs_its_parameters() {
        let mut c = tiny_config(10);
        c.rope_scaling = Some(super::super::config::RopeScaling {
            rope_type: Some("llama3".into()),
            rope_theta: None,
            factor: Some(8.0),
            low_freq_factor: None,
            high_freq_factor: Some(4.0),
            original_max_position_embeddings: Some(8192),
        });
        let err = rope_inv_freq(&c, Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("low_freq_factor"), "{err}");
    }

    #[test]
    fn rms_norm_matches_formula() {
        let x = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).view([1, 4]);
        let n = RmsNorm { weight: Tensor::from_slice(&[1.0f32, 1.0, 2.0, 1.0]), eps: 0.0, gemma: false };
        let y: Vec<f32> = Vec::try_from(n.forward(&x).view([-1])).unwrap();
        let rms = (30.0f32 / 4.0).sqrt();
        let want = [1.0 / rms, 2.0 / rms, 6.0 / rms, 4.0 / rms];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-6);
        }
    }
}
