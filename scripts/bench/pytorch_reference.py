#!/usr/bin/env python3
"""Reference timings with PyTorch + transformers + PEFT, for side-by-side comparison
with icdbench's own training step and greedy generation on libtorch.

Cases, for a tiny Llama and a SmolLM2-135M-shaped Llama (random weights, no download):
  lora_step  one LoRA training step (r=16, alpha=32, on q,k,v,o,gate,up,down):
             forward + backward + AdamW step, batch 8 x 128 tokens
  generate   greedy generation of 32 new tokens after a 256-token prompt, batch 1, KV cache

Each case runs a warm-up, then N timed repeats; one JSON line per case on stdout:
  {"case": "lora_step/tiny", "device": "cpu", "seconds_median": ..., "tokens_per_second": ..., ...}
tokens_per_second counts trained tokens (batch x seq) for lora_step and new tokens for generate.

Usage (the parity venv has the pinned packages: scripts/parity/regenerate.sh sets it up):
  ~/.cache/icdbench/venv-parity/bin/python scripts/bench/pytorch_reference.py [--device cuda]
      [--shapes tiny,smollm2] [--cases lora_step,generate] [--threads N] [--repeats-tiny 5] [--repeats-large 3]
"""

import argparse
import json
import os
import statistics
import sys
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import peft  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

SHAPES = {
    # A 2-layer Llama small enough that the step is all overhead: measures framework cost.
    "tiny": dict(
        vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
        max_position_embeddings=512, rope_parameters=dict(rope_type="default", rope_theta=10000.0),
    ),
    # HuggingFaceTB/SmolLM2-135M's shape (30 layers, GQA 9/3, tied embeddings), random weights.
    "smollm2": dict(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True, rms_norm_eps=1e-5,
        max_position_embeddings=8192, rope_parameters=dict(rope_type="default", rope_theta=100000.0),
    ),
}
CASE_NAMES = {"tiny": "tiny", "smollm2": "smollm2-135m"}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, warmup, repeats):
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
    return times


def build(shape, device, dtype, seed):
    torch.manual_seed(seed)
    cfg = LlamaConfig(**SHAPES[shape], bos_token_id=1, eos_token_id=2, pad_token_id=0)
    model = LlamaForCausalLM(cfg).to(device=device, dtype=dtype)
    return model, cfg


def lora_step(shape, args, device, dtype, repeats):
    model, cfg = build(shape, device, dtype, args.seed)
    lora = peft.LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=LORA_TARGETS,
                           bias="none", task_type="CAUSAL_LM")
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

    times = timed(step, device, args.warmup, repeats)
    extra = dict(batch=args.batch, seq=args.seq, lora_r=16, lora_alpha=32,
                 trainable_params=sum(p.numel() for p in trainable),
                 params=sum(p.numel() for p in model.parameters()))
    return times, args.batch * args.seq, extra


def generate(shape, args, device, dtype, repeats):
    model, cfg = build(shape, device, dtype, args.seed)
    model.eval()
    g = torch.Generator().manual_seed(args.seed + 2)
    prompt = torch.randint(3, cfg.vocab_size, (1, args.prompt), generator=g).to(device)
    mask = torch.ones_like(prompt)

    def run():
        with torch.no_grad():
            out = model.generate(input_ids=prompt, attention_mask=mask, do_sample=False,
                                 max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                                 pad_token_id=0, use_cache=True)
        assert out.shape[1] == args.prompt + args.new_tokens, out.shape

    times = timed(run, device, args.warmup, repeats)
    extra = dict(prompt_tokens=args.prompt, new_tokens=args.new_tokens,
                 params=sum(p.numel() for p in model.parameters()))
    return times, args.new_tokens, extra


CASES = {"lora_step": lora_step, "generate": generate}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads (default: all cores)")
    ap.add_argument("--shapes", default="tiny,smollm2", help=f"comma-separated, of {','.join(SHAPES)}")
    ap.add_argument("--cases", default="lora_step,generate", help=f"comma-separated, of {','.join(CASES)}")
    ap.add_argument("--repeats-tiny", type=int, default=5)
    ap.add_argument("--repeats-large", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: torch.cuda.is_available() is False (a CPU-only machine or no driver)")
    shapes = [s for s in args.shapes.split(",") if s]
    cases = [c for c in args.cases.split(",") if c]
    for s in shapes:
        if s not in SHAPES:
            sys.exit(f"unknown shape {s!r}: choose from {', '.join(SHAPES)}")
    for c in cases:
        if c not in CASES:
            sys.exit(f"unknown case {c!r}: choose from {', '.join(CASES)}")

    torch.set_num_threads(args.threads)
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)  # deprecation notices inside peft/transformers
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{args.threads} threads"

    for shape in shapes:
        repeats = args.repeats_tiny if shape == "tiny" else args.repeats_large
        for case in cases:
            times, tokens, extra = CASES[case](shape, args, device, dtype, repeats)
            med = statistics.median(times)
            print(json.dumps({
                "case": f"{case}/{CASE_NAMES[shape]}",
                "device": args.device,
                "seconds_median": round(med, 6),
                "tokens_per_second": round(tokens / med, 2),
                "seconds_all": [round(t, 6) for t in times],
                "device_name": device_name,
                "dtype": args.dtype,
                "threads": args.threads,
                "warmup": args.warmup,
                **extra,
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "peft": peft.__version__,
            }), flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
