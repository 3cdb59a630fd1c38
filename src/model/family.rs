//! The backbone families the model code implements, one row of [`FAMILIES`] each: the
//! names that identify a family (Hugging Face `model_type` / `architectures`, GGUF
//! `general.architecture`) and the switches that set it apart from Llama. A family whose
//! layer is Llama's with other switches is one row here; a family with a layer of its own
//! (Gemma 3) is, besides, the file with that layer and its [`LayerKind`].

use std::fmt;

/// Which layer a family's decoder stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// Pre-norm attention and gated MLP with two RMSNorms (`super::llama`).
    Llama,
    /// Gemma 3's: four norms, sliding-window layers with their own RoPE, scaled embeddings,
    /// attention scaled by `query_pre_attn_scalar` (`super::gemma3`).
    Gemma3,
}

/// How a family's RMSNorm applies its weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormStyle {
    /// `x / rms(x) · weight`.
    Weight,
    /// `x / rms(x) · (1 + weight)` in f32, the weight starting at 0 (Gemma).
    OnePlusWeight,
}

/// One family: how checkpoints name it and what its layers do differently.
#[derive(Debug, PartialEq)]
pub struct Family {
    /// The family's name in messages.
    pub name: &'static str,
    /// `model_type` values of `config.json` that name it; the first is written for GGUF files.
    pub model_types: &'static [&'static str],
    /// `architectures` classes that name it; the first is written for GGUF files.
    pub architectures: &'static [&'static str],
    /// GGUF `general.architecture` (the prefix of its metadata keys).
    pub gguf: &'static str,
    /// Biases on q/k/v always and never on o (Qwen2), whatever `attention_bias` says.
    pub qkv_bias: bool,
    /// RMSNorm over each head's queries and keys before RoPE.
    pub qk_norm: bool,
    pub norm: NormStyle,
    /// MLP activations (`hidden_act` / `hidden_activation`) its configs may name.
    pub activations: &'static [&'static str],
    /// RoPE base when the config gives none.
    pub rope_theta: f64,
    pub layer: LayerKind,
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// Llama 2/3.x, SmolLM, Mistral (no sliding window): RMSNorm, RoPE, GQA, SwiGLU. The other
/// rows say how they differ from it.
const LLAMA: Family = Family {
    name: "Llama",
    model_types: &["llama", "mistral"],
    architectures: &["LlamaForCausalLM", "MistralForCausalLM"],
    gguf: "llama",
    qkv_bias: false,
    qk_norm: false,
    norm: NormStyle::Weight,
    activations: &["silu"],
    rope_theta: 10_000.0,
    layer: LayerKind::Llama,
};

/// Every family the model code implements.
pub const FAMILIES: &[Family] = &[
    LLAMA,
    // Qwen2 / Qwen2.5: biases on the q/k/v projections.
    Family { name: "Qwen2", model_types: &["qwen2"], architectures: &["Qwen2ForCausalLM"], gguf: "qwen2", qkv_bias: true, ..LLAMA },
    // Qwen3: RMSNorm on each head's queries and keys.
    Family { name: "Qwen3", model_types: &["qwen3"], architectures: &["Qwen3ForCausalLM"], gguf: "qwen3", qk_norm: true, ..LLAMA },
    // Gemma 3 (text): per-head q/k norms, (1 + weight) norms, GeGLU (tanh GELU), its own layer.
    Family {
        name: "Gemma3",
        model_types: &["gemma3_text"],
        architectures: &["Gemma3ForCausalLM"],
        gguf: "gemma3",
        qk_norm: true,
        norm: NormStyle::OnePlusWeight,
        activations: &["gelu_pytorch_tanh", "gelu_tanh"],
        rope_theta: 1_000_000.0,
        layer: LayerKind::Gemma3,
        ..LLAMA
    },
];

/// `model_type` values that name a checkpoint this code cannot load, and what to load instead.
pub const REFUSED: &[(&str, &str)] = &[("gemma3", "model_type gemma3 is the multimodal checkpoint; load a text-only one (gemma3_text, Gemma3ForCausalLM)")];

/// The family a `config.json` names by its `model_type`, else by its first `architectures` class.
pub fn by_config(model_type: &str, architecture: &str) -> Option<&'static Family> {
    FAMILIES
        .iter()
        .find(|f| f.model_types.contains(&model_type))
        .or_else(|| FAMILIES.iter().find(|f| f.architectures.contains(&architecture)))
}

/// The family a GGUF file's `general.architecture` names.
pub fn by_gguf(architecture: &str) -> Option<&'static Family> {
    FAMILIES.iter().find(|f| f.gguf == architecture)
}

/// The GGUF architectures that load, for messages: "llama, qwen2, qwen3 and gemma3".
pub fn gguf_names() -> String {
    listed(FAMILIES.iter().map(|f| f.gguf))
}

/// The `model_type` values that load, for messages: "llama, mistral, qwen2, ...".
pub fn model_type_names() -> String {
    listed(FAMILIES.iter().flat_map(|f| f.model_types.iter().copied()))
}

fn listed<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.join(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_points_at_one_family() {
        let mut owner = std::collections::BTreeMap::new();
        for f in FAMILIES {
            for name in f.model_types.iter().chain(f.architectures).chain([&f.gguf]) {
                let first = *owner.entry((*name).to_string()).or_insert(f.name);
                assert_eq!(first, f.name, "{name} names two families");
            }
            assert!(!f.model_types.is_empty() && !f.architectures.is_empty() && !f.activations.is_empty(), "{f}");
        }
        assert!(REFUSED.iter().all(|(t, _)| by_config(t, "").is_none()));
    }

    #[test]
    fn a_config_finds_its_family_by_type_then_class() {
        assert_eq!(by_config("mistral", "").map(|f| f.name), Some("Llama"));
        assert_eq!(by_config("", "Qwen2ForCausalLM").map(|f| f.name), Some("Qwen2"));
        assert_eq!(by_config("qwen3", "LlamaForCausalLM").map(|f| f.name), Some("Qwen3"));
        assert_eq!(by_config("gpt2", "GPT2LMHeadModel"), None);
        assert_eq!(by_gguf("gemma3").map(|f| f.layer), Some(LayerKind::Gemma3));
        assert_eq!(gguf_names(), "llama, qwen2, qwen3 and gemma3");
    }

    #[test]
    fn a_config_outside_the_table_is_refused_naming_what_loads() {
        let mut c = crate::model::llama::tiny_config(20);
        c.hidden_act = "gelu".into();
        assert_eq!(c.validate().unwrap_err().to_string(), "unsupported activation \"gelu\": icdbench implements silu for Llama");
        c.model_type = "gemma3".into();
        c.architectures = vec!["Gemma3ForConditionalGeneration".into()];
        assert!(c.family().unwrap_err().to_string().contains("multimodal checkpoint"));
        c.model_type = "gpt2".into();
        assert_eq!(c.family().unwrap_err().to_string(), "unsupported architecture \"gpt2\": icdbench implements llama, mistral, qwen2, qwen3 and gemma3_text");
    }
}
