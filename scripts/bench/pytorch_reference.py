#!/usr/bin/env python3
"""Reference timings with PyTorch + transformers + PEFT, for side-by-side comparison with
`icdbench speed` (libtorch through tch) on the same workloads and model shapes.

Shapes (random weights, no download): tiny (2 layers, hidden 64), smollm2-135m, llama-3.2-1b,
llama-3.1-8b, qwen2.5-7b. "smollm2" is accepted for smollm2-135m.

Workloads:
  lora_step  one LoRA training step: r=16, alpha=32 on q,k,v,o,gate,up,down (PEFT, adapters in f32),
             dropout --lora-dropout, forward + backward + AdamW(lr=1e-4) on batch x seq tokens,
             every position labelled; --checkpointing recomputes activations in the backward
  generate   greedy decoding of exactly --new-tokens after a --prompt-token random prompt,
             batch rows without padding, KV cache, prefill included

Each case runs --warmup untimed repeats, then --repeats timed ones, and prints one JSON line:
  {"case": "lora_step/smollm2-135m/b8xs128", "seconds_median": ..., "tokens_per_second": ...,
   "peak_memory_bytes": ..., "flops_per_token": ..., "mfu": ..., ...}
with the same fields `icdbench speed` prints. tokens_per_second counts trained tokens
(batch x seq) for lora_step and new tokens (batch x new) for generate. Peak memory is the
process's peak RSS on CPU and the device's used memory on CUDA, so one case per process gives
the cleanest figure (scripts/bench/compare.sh and scripts/gpu-bench.sh run it that way).
params counts every weight of the base model (norms and biases too, tied embeddings once);
trainable_params counts the LoRA adapters.

Usage (the venv with the pinned packages comes from scripts/parity/venv-parity.sh):
  ~/.cache/icdbench/venv-parity/bin/python scripts/bench/pytorch_reference.py
      [--shapes tiny,smollm2-135m] [--cases lora_step,generate] [--device cpu|cuda] [--dtype f32|bf16]
      [--batch B] [--seq S] [--prompt P] [--new-tokens N] [--checkpointing] [--repeats N] ...
"""

import argparse
import gc
import json
import os
import statistics
import sys
import time
import warnings
from collections import namedtuple

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import peft  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config  # noqa: E402

FRAMEWORK = "pytorch+transformers+peft"
LORA_R, LORA_ALPHA = 16, 32
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def llama3_rope(factor):
    """Llama 3.x rope scaling: long wavelengths stretched by `factor`, short ones kept."""
    return dict(rope_type="llama3", rope_theta=500000.0, factor=factor, low_freq_factor=1.0,
                high_freq_factor=4.0, original_max_position_embeddings=8192)


# Config class and fields per shape; the published checkpoints' config.json values, random weights.
SHAPES = {
    # A 2-layer Llama small enough that a step is all overhead: measures framework cost.
    "tiny": (LlamaConfig, dict(
        vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
        max_position_embeddings=512, rope_parameters=dict(rope_type="default", rope_theta=10000.0),
    )),
    # HuggingFaceTB/SmolLM2-135M: 30 layers, GQA 9/3, tied embeddings.
    "smollm2-135m": (LlamaConfig, dict(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True, rms_norm_eps=1e-5,
        max_position_embeddings=8192, rope_parameters=dict(rope_type="default", rope_theta=100000.0),
    )),
    # meta-llama/Llama-3.2-1B: 16 layers, GQA 32/8, tied embeddings, llama3 rope x32.
    "llama-3.2-1b": (LlamaConfig, dict(
        vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
        num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=True, rms_norm_eps=1e-5,
        max_position_embeddings=131072, rope_parameters=llama3_rope(32.0),
    )),
    # meta-llama/Llama-3.1-8B: 32 layers, GQA 32/8, untied, llama3 rope x8.
    "llama-3.1-8b": (LlamaConfig, dict(
        vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False, rms_norm_eps=1e-5,
        max_position_embeddings=131072, rope_parameters=llama3_rope(8.0),
    )),
    # Qwen/Qwen2.5-7B: 28 layers, GQA 28/4, untied; Qwen2 has q/k/v biases by construction.
    "qwen2.5-7b": (Qwen2Config, dict(
        vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
        num_attention_heads=28, num_key_value_heads=4, tie_word_embeddings=False, rms_norm_eps=1e-6,
        max_position_embeddings=32768, rope_parameters=dict(rope_type="default", rope_theta=1000000.0),
        use_sliding_window=False,
    )),
}
ALIASES = {"smollm2": "smollm2-135m"}
DTYPES = {"f32": "f32", "float32": "f32", "bf16": "bf16", "bfloat16": "bf16"}
TORCH_DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16}
# Dense bf16 peak of the GPUs the project runs on, matched against torch.cuda.get_device_name.
PEAK_BF16_TFLOPS = [("H100", 989.0), ("H200", 989.0), ("A100", 312.0), ("L40S", 362.0)]


Dims = namedtuple("Dims", "d heads kv head_dim ff layers vocab")


def dims(cfg):
    """The sizes the FLOP counts need, from a transformers config."""
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return Dims(cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, head_dim,
                cfg.intermediate_size, cfg.num_hidden_layers, cfg.vocab_size)


def matmul_params(cfg):
    """Weights that take part in a matrix product per token: the seven projections of every
    layer and the lm_head (tied or not; the embedding lookup is not a product)."""
    m = dims(cfg)
    d, q, kv = m.d, m.heads * m.head_dim, m.kv * m.head_dim
    return m.layers * (d * q + 2 * d * kv + q * d + 3 * d * m.ff) + m.vocab * d


def lora_params(cfg, r=LORA_R):
    """Adapter weights of rank r on all seven projections: r x (in + out) per projection."""
    m = dims(cfg)
    d, q, kv = m.d, m.heads * m.head_dim, m.kv * m.head_dim
    return m.layers * r * ((d + q) + 2 * (d + kv) + (q + d) + 2 * (d + m.ff) + (m.ff + d))


def lora_step_flops_per_token(cfg, seq):
    """Model FLOPs per trained token of a LoRA step (recomputation under checkpointing not counted).

    Frozen base weights: forward 2N plus activation gradients 2N, no weight gradients (4 N_mm).
    Adapters: forward, activation and weight gradients (6 N_lora). Attention: QK^T and AV take
    4 * seq * d_attn per token and layer forward, twice that backward (12 * layers * seq * d_attn).
    """
    m = dims(cfg)
    return 4 * matmul_params(cfg) + 6 * lora_params(cfg) + 12 * m.layers * seq * m.heads * m.head_dim


def generate_flops_per_token(cfg, prompt, new_tokens):
    """Model FLOPs per generated token: 2N for the products, and QK^T and AV over the mean
    context (prompt + new/2)."""
    m = dims(cfg)
    return 2 * matmul_params(cfg) + 4 * m.layers * (prompt + new_tokens / 2) * m.heads * m.head_dim


def default_peak_tflops(device, device_name, dtype):
    """The bf16 dense peak of a known GPU; None on CPU, in f32, or for an unlisted GPU."""
    if device.type != "cuda" or dtype != "bf16":
        return None
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key in device_name), None)


class PeakMemory:
    """Peak memory over one case. CPU: the process's peak RSS (VmHWM), reset through
    /proc/self/clear_refs before the model is built. CUDA: the largest total - free of
    torch.cuda.mem_get_info over samples taken after each timed repeat."""

    def __init__(self, device):
        self.device = device
        self.samples = []
        if device.type == "cuda":
            self.measure = "cuda_used (total−free after each repeat)"
            torch.cuda.reset_peak_memory_stats(device)
        else:
            self.measure = "peak_rss (VmHWM, process)"
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")
            except OSError:
                self.measure = "peak_rss (VmHWM, process, not reset: /proc/self/clear_refs not writable)"

    def sample(self):
        if self.device.type == "cuda":
            free, total = torch.cuda.mem_get_info(self.device)
            self.samples.append(total - free)

    def peak_bytes(self):
        if self.device.type == "cuda":
            return max(self.samples) if self.samples else None
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024  # reported in kB
        except OSError:
            pass
        return None

    def max_allocated(self):
        return torch.cuda.max_memory_allocated(self.device) if self.device.type == "cuda" else None


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, warmup, repeats, memory):
    """Runs fn warmup times untimed, then repeats times; returns the seconds of each timed run."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
        memory.sample()
    return times


def build(shape, device, dtype, seed):
    """The model in its target dtype directly on the target device: an 8B shape never exists
    as f32 on the CPU. Weights are transformers' own random init (normal, std 0.02)."""
    cls, fields = SHAPES[shape]
    cfg = cls(**fields, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    return model, cfg


def lora_step(shape, args, device, dtype, memory):
    model, cfg = build(shape, device, dtype, args.seed)
    params = sum(p.numel() for p in model.parameters())  # the base model's, before adapters join it
    if args.checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    lora = peft.LoraConfig(r=LORA_R, lora_alpha=LORA_ALPHA, lora_dropout=args.lora_dropout,
                           target_modules=LORA_TARGETS, bias="none", task_type="CAUSAL_LM")
    model = peft.get_peft_model(model, lora)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4)
    g = torch.Generator().manual_seed(args.seed + 1)
    ids = torch.randint(3, cfg.vocab_size, (args.batch, args.seq), generator=g).to(device)

    def step():
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    times = timed(step, device, args.warmup, args.repeats, memory)
    return times, dict(
        tokens=args.batch * args.seq,
        params=params,
        trainable_params=sum(p.numel() for p in trainable),
        flops_per_token=lora_step_flops_per_token(cfg, args.seq),
    )


def generate(shape, args, device, dtype, memory):
    model, cfg = build(shape, device, dtype, args.seed)
    model.eval()
    g = torch.Generator().manual_seed(args.seed + 2)
    prompt = torch.randint(3, cfg.vocab_size, (args.batch, args.prompt), generator=g).to(device)
    mask = torch.ones_like(prompt)

    def run():
        with torch.no_grad():
            out = model.generate(input_ids=prompt, attention_mask=mask, do_sample=False,
                                 max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                                 pad_token_id=0, use_cache=True)
        assert out.shape == (args.batch, args.prompt + args.new_tokens), out.shape

    times = timed(run, device, args.warmup, args.repeats, memory)
    return times, dict(
        tokens=args.batch * args.new_tokens,
        params=sum(p.numel() for p in model.parameters()),
        trainable_params=None,
        flops_per_token=generate_flops_per_token(cfg, args.prompt, args.new_tokens),
    )


CASES = {"lora_step": lora_step, "generate": generate}


def case_name(workload, shape, args):
    """The key both frameworks print and compare.sh matches on."""
    if workload == "lora_step":
        return f"lora_step/{shape}/b{args.batch}xs{args.seq}" + ("+ckpt" if args.checkpointing else "")
    return f"generate/{shape}/b{args.batch}/p{args.prompt}+n{args.new_tokens}"


def run_case(workload, shape, args, device, dtype_name, peak_tflops):
    args = argparse.Namespace(**vars(args))
    if args.batch is None:
        args.batch = 8 if workload == "lora_step" else 1
    if args.repeats is None:
        args.repeats = 5 if shape == "tiny" else 3
    memory = PeakMemory(device)
    times, info = CASES[workload](shape, args, device, TORCH_DTYPES[dtype_name], memory)
    med = statistics.median(times)
    tokens_per_second = info["tokens"] / med
    mfu = None
    if peak_tflops and workload == "lora_step":
        mfu = round(tokens_per_second * info["flops_per_token"] / (peak_tflops * 1e12), 4)
    line = {
        "case": case_name(workload, shape, args),
        "workload": workload,
        "shape": shape,
        "batch": args.batch,
        "seq": args.seq if workload == "lora_step" else args.prompt,
        "new_tokens": args.new_tokens if workload == "generate" else None,
        "checkpointing": bool(args.checkpointing and workload == "lora_step"),
        "lora_dropout": args.lora_dropout,
        "framework": FRAMEWORK,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "peft": peft.__version__},
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dtype": dtype_name,
        "threads": args.threads,
        "seconds_median": round(med, 6),
        "seconds": [round(t, 6) for t in times],
        "tokens_per_second": round(tokens_per_second, 2),
        "peak_memory_bytes": memory.peak_bytes(),
        "memory_measure": memory.measure,
        "cuda_max_allocated_bytes": memory.max_allocated(),
        "params": info["params"],
        "trainable_params": info["trainable_params"],
        "flops_per_token": round(info["flops_per_token"]),
        "mfu": mfu,
    }
    print(json.dumps(line), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default="tiny,smollm2-135m", help=f"comma-separated, of {','.join(SHAPES)}")
    ap.add_argument("--cases", default="lora_step,generate", help=f"comma-separated, of {','.join(CASES)}")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--dtype", default="f32", choices=sorted(DTYPES))
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads (default: all cores)")
    ap.add_argument("--seq", type=int, default=128, help="lora_step: tokens per row")
    ap.add_argument("--batch", type=int, default=None, help="rows (default: 8 for lora_step, 1 for generate)")
    ap.add_argument("--prompt", type=int, default=256, help="generate: prompt tokens per row")
    ap.add_argument("--new-tokens", type=int, default=32, help="generate: tokens decoded per row")
    ap.add_argument("--checkpointing", action="store_true", help="lora_step: recompute activations in the backward")
    ap.add_argument("--lora-dropout", type=float, default=0.05)
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats (default: 5 for tiny, 3 for the rest)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help="device peak for MFU (default: the bf16 dense peak of H100/H200, A100, L40S; none on CPU or f32)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    shapes = [ALIASES.get(s, s) for s in args.shapes.split(",") if s]
    workloads = [c for c in args.cases.split(",") if c]
    for s in shapes:
        if s not in SHAPES:
            sys.exit(f"unknown shape {s!r}: choose from {', '.join(SHAPES)}")
    for c in workloads:
        if c not in CASES:
            sys.exit(f"unknown case {c!r}: choose from {', '.join(CASES)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: torch.cuda.is_available() is False (a CPU-only machine or no driver)")

    torch.set_num_threads(args.threads)
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)  # deprecation notices inside peft/transformers
    device = torch.device(args.device)
    dtype_name = DTYPES[args.dtype]
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak_tflops = args.peak_tflops or default_peak_tflops(device, device_name, dtype_name)

    for shape in shapes:
        for workload in workloads:
            run_case(workload, shape, args, device, dtype_name, peak_tflops)
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
