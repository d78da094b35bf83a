"""AWQ on models where every query head has its own KV head, so the v -> attn_output group is
searched and folded too (stories260K, which test_awq.c uses, has grouped-query attention and
skips it as llm-awq does); one of them a qwen2 model whose attn_v.bias is folded with v's rows.

For each miniature model (tests/make_test_model.py shapes, random weights):
  - `lowbit quantize --profile awq (g32, zero point) --calib` writes a file gguf-py reads, with
    attn_norm, ffn_norm and (qwen2) attn_v.bias changed by the folded scales (in at least one
    layer: alpha = 0 may win elsewhere) and every layer matrix Q4_1;
  - its KL divergence from the float model stays within 1.5x of round to nearest on the same
    grid (a wrong fold or a scale applied twice gives far more), measured by `lowbit perplexity`.
"""
import json
import os
import subprocess
import sys
import tempfile

import lbtest as T

T.require("numpy", "gguf", "sentencepiece")
import gguf  # noqa: E402
import numpy as np  # noqa: E402

lowbit = T.tool("lowbit") or T.bail("lowbit is not built")
tokenizer = T.shared("tokenizer.model")
sys.path.insert(0, os.path.join(T.srcdir(), "tests"))
import make_test_model as mtm  # noqa: E402

TEXT = """Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her
friends. One day, she saw a big red ball under a tree. She ran to the ball and picked it up. It was shiny and new.
Lily's mom said, "Lily, you can play with the ball, but you must share it with your friends." Lily nodded and
smiled. She threw the ball to her friend Tom. Tom caught the ball and laughed. They played all day until the sun
went down. One day, a little boy named Tim went to the store with his dad. He wanted to buy a toy car.
"""

MODELS = {
    "llama-mha": mtm.Spec(n_embd=128, n_head=4, n_head_kv=4, n_layer=2, n_ff=256, tied=False, embd_std=0.02, seed=5),
    "qwen2-mha": mtm.Spec(arch="qwen2", n_embd=128, n_head=4, n_head_kv=4, n_layer=2, n_ff=256, tied=False,
                          qkv_bias=True, rope_base=1e6, eps=1e-6, embd_std=0.02, seed=6),
}


def run(args):
    r = subprocess.run([lowbit] + args, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"lowbit {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


def tensors(path):
    return {t.name: (t.tensor_type.name, np.asarray(t.data)) for t in gguf.GGUFReader(path).tensors}


with tempfile.TemporaryDirectory() as tmp:
    text = os.path.join(tmp, "text.txt")
    with open(text, "w") as f:
        f.write(TEXT * 3)
    vocab = mtm.llama_vocab(tokenizer)
    for name, spec in MODELS.items():
        src = os.path.join(tmp, f"{name}.gguf")
        mtm.write_gguf(src, spec, mtm.make_weights(spec, len(vocab[0])), vocab)
        kld = {}
        for method in ("rtn", "awq"):
            prof = os.path.join(tmp, f"{method}.yaml")
            with open(prof, "w") as f:
                f.write(f"name: {method}\nmethod: {method}\nbits: 4\ngranularity: group\ngroup_size: 32\nsymmetric: false\n")
            out = os.path.join(tmp, f"{name}-{method}.gguf")
            calib = ["--calib", text, "--calib-ctx", "64", "--calib-samples", "4"] if method == "awq" else []
            run(["quantize", "-q", "-m", src, "--profile", prof, "-o", out] + calib)
            base = os.path.join(tmp, f"{name}.lp")
            if not os.path.exists(base):
                run(["perplexity", "-m", src, "-f", text, "--ctx", "64", "--save-logits", base, "--json"])
            kld[method] = json.loads(run(["perplexity", "-m", out, "-f", text, "--ctx", "64", "--kld-base", base,
                                          "--json"]))["kld_mean"]
        ours, orig = tensors(os.path.join(tmp, f"{name}-awq.gguf")), tensors(src)
        layers = [f"blk.{i}." for i in range(spec.n_layer)]
        # alpha = 0 (scales 1) may win a group in some layer, so: changed in at least one layer.
        changed = [k for k in ("attn_norm.weight", "ffn_norm.weight") + (("attn_v.bias",) if spec.qkv_bias else ())
                   if any(not np.allclose(ours[p + k][1], orig[p + k][1]) for p in layers)]
        T.check(f"{name}: folded scales changed " + ", ".join(changed) +
                (" (the bias: v -> attn_output was searched and folded)" if spec.qkv_bias else ""),
                len(changed) == (3 if spec.qkv_bias else 2))
        mats = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
        T.check(f"{name}: every layer matrix is Q4_1",
                all(ours[p + m + ".weight"][0] == "Q4_1" for p in layers for m in mats))
        T.check(f"{name}: AWQ's KLD {kld['awq']:.5f} within 1.5x of round to nearest's {kld['rtn']:.5f}",
                0 < kld["awq"] < 1.5 * kld["rtn"])
sys.exit(T.finish())
