#!/usr/bin/env python3
"""Writes the parity fixtures that tests/parity.rs checks the Rust model code against.

For each tiny random checkpoint (llama, llama31, qwen2, qwen3, gemma3) this saves, under
tests/fixtures/parity/<name>/, the checkpoint as transformers writes it
(config.json, model.safetensors, generation_config.json) and expected.safetensors
with the reference logits computed by transformers on CPU in float32:

    input_ids            [2, 7]     int64  seeded token ids
    full_logits          [2, 7, V]  f32    one forward over all 7 tokens
    prefill_logits       [2, 4, V]  f32    forward over the first 4 tokens, filling a DynamicCache
    step_logits_{0,1,2}  [2, 1, V]  f32    tokens 5, 6, 7 fed one at a time through that cache
    padded_input_ids     [2, 7]     int64  sequences of length 7 and 4, the second left-padded
    padded_attention_mask[2, 7]     int64  1 = token, 0 = padding
    padded_position_ids  [2, 7]     int64  cumsum(mask) - 1, clamped at 0 (as HF generate)
    padded_logits        [2, 7, V]  f32    logits of the padded batch (compare where mask == 1)

Every weight, norms and biases included, is drawn from a seeded generator so that a
wrong norm, a missing bias or a swapped projection changes the logits. The output is
byte-identical from run to run; MANIFEST.json records the sha256 of this script and of
every file, which `fixtures_are_current` in tests/parity.rs checks.

Run it through scripts/parity/regenerate.sh (which pins the Python packages).
"""

import hashlib
import json
import math
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import safetensors.torch  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import (  # noqa: E402
    DynamicCache,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "parity"
SCRIPT = Path(__file__).resolve()

BATCH, SEQ, PREFILL, SHORT = 2, 7, 4, 4
PAD_ID = 0

# The sizes every fixture shares (head_dim 16 unless a config says otherwise).
COMMON = dict(
    vocab_size=128,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    rms_norm_eps=1e-6,
    bos_token_id=1,
    eos_token_id=2,
)

# Llama 3.1 rope scaling. With head_dim 16 and theta 500000 the RoPE wavelengths are
# 6.3, 32.5, 168, 872, ... positions; original_max_position_embeddings 64 puts 6.3
# below high_freq_wavelen (16: kept), 32.5 between 16 and 64 (smoothed) and the rest
# above low_freq_wavelen (64: divided by 8), so all three branches are exercised.
LLAMA31_ROPE = dict(
    rope_type="llama3",
    rope_theta=500000.0,
    factor=8.0,
    low_freq_factor=1.0,
    high_freq_factor=4.0,
    original_max_position_embeddings=64,
)


def fixtures():
    """(name, seed, model class, config) for each fixture."""
    return [
        ("llama", 1, LlamaForCausalLM, LlamaConfig(
            **COMMON, max_position_embeddings=256, tie_word_embeddings=False,
            rope_parameters=dict(rope_type="default", rope_theta=10000.0))),
        ("llama31", 2, LlamaForCausalLM, LlamaConfig(
            **COMMON, max_position_embeddings=256, tie_word_embeddings=True,
            rope_parameters=dict(LLAMA31_ROPE))),
        ("qwen2", 3, Qwen2ForCausalLM, Qwen2Config(
            **COMMON, max_position_embeddings=256, tie_word_embeddings=False,
            use_sliding_window=False, max_window_layers=2,
            rope_parameters=dict(rope_type="default", rope_theta=1000000.0))),
        ("qwen3", 4, Qwen3ForCausalLM, Qwen3Config(
            **COMMON, head_dim=32, max_position_embeddings=256, tie_word_embeddings=False,
            use_sliding_window=False, max_window_layers=2, attention_bias=False,
            rope_parameters=dict(rope_type="default", rope_theta=1000000.0))),
        # A window of 3 that the 7-token forward, the cached steps after a 4-token prefill and
        # the padded row all cross; local, global, local layers, each kind with its own RoPE
        # (the global one linearly scaled); query_pre_attn_scalar 24, neither head_dim (32)
        # nor hidden / heads (16), so the attention scale is tested too.
        ("gemma3", 5, Gemma3ForCausalLM, Gemma3TextConfig(
            **{**COMMON, "num_hidden_layers": 3}, head_dim=32, query_pre_attn_scalar=24,
            sliding_window=3, layer_types=["sliding_attention", "full_attention", "sliding_attention"],
            hidden_activation="gelu_pytorch_tanh", max_position_embeddings=256, tie_word_embeddings=True,
            pad_token_id=PAD_ID,
            rope_parameters={"full_attention": dict(rope_type="linear", factor=2.0, rope_theta=1000000.0),
                             "sliding_attention": dict(rope_type="default", rope_theta=10000.0)})),
    ]


def check_llama3_branches(cfg):
    """Fails unless the llama3 scaling keeps, smooths and divides at least one frequency each."""
    rp = cfg.rope_parameters
    dim = cfg.head_dim
    inv = [1.0 / rp["rope_theta"] ** (2 * i / dim) for i in range(dim // 2)]
    wl = [2 * math.pi / f for f in inv]
    old = rp["original_max_position_embeddings"]
    hi, lo = old / rp["high_freq_factor"], old / rp["low_freq_factor"]
    kept = sum(w < hi for w in wl)
    divided = sum(w > lo for w in wl)
    smoothed = len(wl) - kept - divided
    assert kept and divided and smoothed, f"llama3 rope branches kept/smoothed/divided = {kept}/{smoothed}/{divided}"


@torch.no_grad()
def randomise(model, seed, zero_centred_norms=False):
    """Draws every parameter from a seeded generator, at scales that keep activations O(1).

    Norm weights in [0.5, 1.5] (not 1; Gemma's zero-centred ones in [-0.5, 0.5], so that
    1 + w is), biases N(0, 0.3^2), matrices and embeddings N(0, 1/fan_in): attention is
    far from uniform and every tensor matters.
    """
    g = torch.Generator().manual_seed(seed)
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        if name.endswith("embed_tokens.weight"):
            # 1/sqrt(hidden), not 1: a tied lm_head must give O(1) logits too.
            v = torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1])
        elif p.dim() == 1 and "norm" in name:
            v = (0.5 if not zero_centred_norms else -0.5) + torch.rand(p.shape, generator=g)
        elif name.endswith(".bias"):
            v = 0.3 * torch.randn(p.shape, generator=g)
        elif p.dim() == 2:
            v = torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1])
        else:
            raise ValueError(f"no initialisation rule for {name} {tuple(p.shape)}")
        p.copy_(v.to(p.dtype))


def logits(model, **kw):
    return model(**kw).logits.float().contiguous()


@torch.no_grad()
def expected(model, cfg, seed):
    g = torch.Generator().manual_seed(1000 + seed)
    # Ids avoid PAD_ID so that padding is the only place it appears.
    ids = torch.randint(1, cfg.vocab_size, (BATCH, SEQ), generator=g, dtype=torch.int64)
    pos = torch.arange(SEQ, dtype=torch.int64).expand(BATCH, SEQ).contiguous()
    full = logits(model, input_ids=ids, position_ids=pos)

    cache = DynamicCache(config=model.config)
    prefill = logits(model, input_ids=ids[:, :PREFILL], position_ids=pos[:, :PREFILL],
                     cache=cache, use_cache=True)
    steps = []
    for t in range(PREFILL, SEQ):
        steps.append(logits(model, input_ids=ids[:, t:t + 1], position_ids=pos[:, t:t + 1],
                            cache=cache, use_cache=True))

    lengths = [SEQ, SHORT]
    pids = torch.full((BATCH, SEQ), PAD_ID, dtype=torch.int64)
    mask = torch.zeros((BATCH, SEQ), dtype=torch.int64)
    for b, n in enumerate(lengths):
        pids[b, SEQ - n:] = ids[b, :n]
        mask[b, SEQ - n:] = 1
    ppos = (mask.cumsum(-1) - 1).clamp_min(0)
    padded = logits(model, input_ids=pids, attention_mask=mask, position_ids=ppos)

    # Self-checks: the cache and the padding must reproduce the unpadded full forward.
    tol = 1e-5
    assert (prefill - full[:, :PREFILL]).abs().max() < tol, (prefill - full[:, :PREFILL]).abs().amax(-1)
    for i, s in enumerate(steps):
        assert (s[:, 0] - full[:, PREFILL + i]).abs().max() < tol, f"step {i}"
    for b, n in enumerate(lengths):
        assert (padded[b, SEQ - n:] - full[b, :n]).abs().max() < tol, f"padded row {b}"
    assert torch.isfinite(full).all() and torch.isfinite(padded[mask.bool()]).all()
    # Logits must not be near-constant, or a tolerance of 1e-4 would prove little.
    assert full.std() > 0.3, f"logit std {full.std():.3f} too small"

    out = {
        "input_ids": ids,
        "full_logits": full,
        "prefill_logits": prefill,
        "padded_input_ids": pids,
        "padded_attention_mask": mask,
        "padded_position_ids": ppos,
        # Padding rows attend to nothing real: their values are meaningless, store zeros.
        "padded_logits": torch.where(mask.bool().unsqueeze(-1), padded, torch.zeros_like(padded)),
    }
    for i, s in enumerate(steps):
        out[f"step_logits_{i}"] = s
    return out


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main():
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # one thread: the same reduction order on every run
    transformers.set_seed(0)

    if OUT.exists():
        for child in OUT.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            elif child.name != ".gitattributes":
                child.unlink()
    OUT.mkdir(parents=True, exist_ok=True)

    for name, seed, cls, cfg in fixtures():
        if cfg.rope_parameters.get("rope_type") == "llama3":
            check_llama3_branches(cfg)
        gemma = cls is Gemma3ForCausalLM
        # Eager attention: the plain softmax(QK^T/sqrt(d) + mask)V the Rust code implements.
        model = cls._from_config(cfg, attn_implementation="eager", dtype=torch.float32).eval()
        randomise(model, seed, zero_centred_norms=gemma)
        if cfg.tie_word_embeddings:
            assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()

        d = OUT / name
        model.save_pretrained(d)
        tensors = expected(model, cfg, seed)
        safetensors.torch.save_file(tensors, d / "expected.safetensors", metadata={"pad_id": str(PAD_ID)})

        # The saved checkpoint must reload to the same logits (nothing lost on the way).
        reloaded = cls.from_pretrained(d, dtype=torch.float32).eval()
        with torch.no_grad():
            again = logits(reloaded, input_ids=tensors["input_ids"])
        assert (again - tensors["full_logits"]).abs().max() < 1e-5, f"{name}: reload changed logits"

        size = sum(f.stat().st_size for f in d.iterdir())
        print(f"{name}: {size / 1024:.0f} KiB, logit std {tensors['full_logits'].std():.3f}", file=sys.stderr)

    files = sorted(p for p in OUT.rglob("*") if p.is_file() and p.name not in ("MANIFEST.json", ".gitattributes"))
    manifest = {
        "generator": "scripts/parity/make_fixtures.py",
        "generator_sha256": sha256(SCRIPT),
        "regenerate": "make parity-fixtures  (bash scripts/parity/regenerate.sh)",
        "versions": {
            "python": ".".join(map(str, sys.version_info[:2])),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "safetensors": safetensors.__version__,
        },
        "files": {p.relative_to(OUT).as_posix(): sha256(p) for p in files},
    }
    (OUT / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(f"wrote {len(files)} files and MANIFEST.json under {OUT.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
