#!/usr/bin/env python3
"""make_spec_pair.py — a target / draft pair for the speculative decoding benchmark.

    bench/make_spec_pair.py OUT_DIR [--layers 12] [--draft-layers 2] [--eps 0.1]

Writes OUT_DIR/spec-target-f16.gguf and OUT_DIR/spec-draft-f16.gguf, both F16 with
TinyLlama-1.1B's width (dim 2048, 32 heads, 4 KV heads, FFN 5632) and the real
LLaMA-2 vocabulary (tests/make_test_model.py writes them), so lowbit and llama.cpp
read the same files.

Random weights give a draft no reason to agree with a target, so the pair is built to
agree the way a small model of a family agrees with a large one: the draft is the
first --draft-layers layers of the target, with the same embeddings and head; the
target's further layers have their output projections (attn_output, ffn_down) scaled
by --eps, so they nudge the residual stream instead of replacing it. --eps sets how
often the two disagree. Self-drafting needs no pair: the target's own weights are
quantized at load (lowbit run --draft-profile).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import make_test_model as mtm  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--draft-layers", type=int, default=2)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--tokenizer", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                       "shared", "models", "tokenizer.model"))
    a = ap.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    shape = dict(n_embd=2048, n_head=32, n_head_kv=4, n_ff=5632, n_ctx=2048, tied=False, seed=61)
    target_spec = mtm.Spec(n_layer=a.layers, **shape)
    draft_spec = mtm.Spec(n_layer=a.draft_layers, **shape)
    vocab = mtm.llama_vocab(a.tokenizer)
    w = mtm.make_weights(target_spec, len(vocab[0]))
    for il in range(a.draft_layers, a.layers):
        for name in ("attn_output", "ffn_down"):
            w[f"blk.{il}.{name}.weight"] *= a.eps
    draft = {k: v for k, v in w.items() if not k.startswith("blk.") or int(k.split(".")[1]) < a.draft_layers}
    mtm.write_gguf(os.path.join(a.out_dir, "spec-draft-f16.gguf"), draft_spec, draft, vocab, "F16")
    mtm.write_gguf(os.path.join(a.out_dir, "spec-target-f16.gguf"), target_spec, w, vocab, "F16")
    return 0


if __name__ == "__main__":
    sys.exit(main())
