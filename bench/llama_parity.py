"""The real Gemma 3 270M under Tunix against llama.cpp, with Tunix in float32 and in bfloat16: figures, not pass/fail.

    flock /tmp/real.lock python bench/llama_parity.py [--dtype float32 bfloat16] [--short 38] [--long 13]

What tests/real/test_gemma_parity.py asserts for float32 (tests/real/greedy.py's parity_rows, the same prompts),
with the bfloat16 figures beside it, which the issue asks to report and not to assert: llama.cpp serves the F32
GGUF our exporter writes from the dequantized weights (float32 KV cache); Tunix runs the same weights in each
--dtype (float32 logits in both, as train/eval.py computes them). One JSON line per dtype.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from tests.real import parity_texts  # noqa: E402
from tests.real.greedy import (F32_KV_CACHE, PARITY_CONTEXT, PARITY_SLOTS, parity_figures, parity_rows,  # noqa: E402
                               write_f32_gguf)
from tests.real.llama import LlamaServer, gemma_270m  # noqa: E402

NEW_TOKENS, LONG_BATCH = 24, 2  # as the test


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dtype", nargs="+", choices=["float32", "bfloat16"], default=["float32", "bfloat16"])
    p.add_argument("--short", type=int, default=38, help="prompts within the 512-token window")
    p.add_argument("--long", type=int, default=13, help="prompts past it")
    args = p.parse_args()

    from tunixhack.train import gguf_in
    from tunixhack.train import model as models

    with tempfile.TemporaryDirectory(prefix="llama-parity-") as tmp:
        gguf_in.convert(str(gemma_270m()), f"{tmp}/hf")
        source = models.resolve(f"{tmp}/hf")
        tok = models.load_tokenizer(source)
        gguf = write_f32_gguf(source, tok, Path(tmp) / "gemma-3-270m-f32.gguf")
        short, long = parity_texts.short_prompts(args.short), parity_texts.long_prompts(tok, args.long, step=4)
        with LlamaServer(gguf, parallel=PARITY_SLOTS, context=PARITY_CONTEXT, extra=F32_KV_CACHE) as server:
            for dtype in args.dtype:
                rows, seconds = parity_rows(source, tok, server, short, long, NEW_TOKENS, LONG_BATCH, dtype)
                print(json.dumps({"tunix_dtype": dtype, **parity_figures(rows, NEW_TOKENS),
                                  "seconds": {k: round(v) for k, v in seconds.items()},
                                  "load_average": [round(x, 1) for x in os.getloadavg()]}), flush=True)


if __name__ == "__main__":
    main()
