#!/usr/bin/env python3
"""Loads adapters icdbench wrote (PEFT format) into transformers + PEFT and compares
the logits with the ones icdbench computed for the same input.

  python scripts/parity/peft_reload.py BASE_DIR ADAPTER_DIR CASE.safetensors [--tol 1e-4]

BASE_DIR holds config.json + model.safetensors (a Llama-family checkpoint),
ADAPTER_DIR adapter_config.json + adapter_model.safetensors, and CASE.safetensors
`input_ids` [b, t] (int64) and `logits` [b, t, vocab] (f32). Prints one JSON line
with the largest absolute difference (and the difference with the adapters
disabled); exits 1 when the first exceeds --tol or the second does not.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import peft  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import load_file  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base")
    ap.add_argument("adapter")
    ap.add_argument("case")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()

    transformers.utils.logging.set_verbosity_error()
    model = transformers.AutoModelForCausalLM.from_pretrained(args.base, dtype=torch.float32)
    model = peft.PeftModel.from_pretrained(model, args.adapter)
    model.eval()
    case = load_file(args.case)
    with torch.no_grad():
        logits = model(input_ids=case["input_ids"]).logits.float()
        with model.disable_adapter():
            base = model(input_ids=case["input_ids"]).logits.float()
    diff = (logits - case["logits"]).abs().max().item()
    # The adapters must matter: otherwise a load that silently skipped them would pass.
    base_diff = (base - case["logits"]).abs().max().item()
    print(json.dumps({"max_abs_diff": diff, "without_adapters": base_diff, "tol": args.tol,
                      "transformers": transformers.__version__, "peft": peft.__version__}))
    sys.exit(0 if diff <= args.tol < base_diff else 1)


if __name__ == "__main__":
    main()
