#!/usr/bin/env python3
"""make_spec_pair.py — a target / draft pair for the speculative decoding benchmark.

    bench/make_spec_pair.py OUT_DIR [--layers 12] [--eps 0.6] [--seed 7] [--source stories260K.gguf]

Writes, all F16, LLaMA architecture, stories260K's 512-token vocabulary (so lowbit and
llama.cpp read the same files and accept them as a pair):
  OUT_DIR/spec-target-f16.gguf  TinyLlama-1.1B's width (dim 2048, 32 heads of 64, 4 KV
                                heads, FFN 5632), --layers layers: 1.2 GB at 12 layers;
  OUT_DIR/spec-draft-f16.gguf   dim 512, 8 heads of 64, 4 KV heads, FFN 1536, 5 layers: 24 MB.

What the pair is. Random weights make a near-uniform next-token distribution, so no
draft agrees with its target and acceptance says nothing. Here both models compute a
real trained model, stories260K (Karpathy's tinyllamas, TinyStories; ../shared/models),
lifted into a larger one:
- the residual stream is rotated into the wider model by a random orthonormal map P
  (2048 × 64), so every weight matrix is dense and Gaussian-looking in its rows, as a
  trained model's are, and quantizing it adds the errors quantizing a dense matrix adds;
  RMSNorm gains are folded into the matrices that read the norm (and the 2048/64
  change of the mean in the norm into a scale), as rotation-based quantizers do;
- stories260K's 8 heads of 8 become 8 of the 32 heads of 64: their query / key pairs go
  to the pairs of the wider head that RoPE turns at the same frequencies (pair i of 4 ->
  pair 8i of 32), the query scaled by sqrt(64/8) for the wider 1/sqrt(d); its 172 FFN
  units become 172 of the 5632;
- in the target, everything else is filler: the other 24 heads and 5460 FFN units, and
  the layers after the 5th, are N(0, 1/fan_in) with their output projections scaled so
  that each writes a vector of about --eps times a token embedding's length into the
  residual stream. --eps sets how far the target moves from stories260K;
- the draft is stories260K lifted the same way with no filler: it computes stories260K
  (to F16 rounding), 1/37 of the target's bytes.
So the target's next-token distributions are a trained model's (peaked where the story
is predictable), perturbed; a self-draft (`lowbit run --draft-profile q4_0`) sees the
quantization error of dense F16 matrices; the separate draft is the unperturbed small
model. It is not a trained 1B model: acceptance rates here are those of this
construction, which BENCHMARKS.md reports next to the --eps used.
"""
import argparse
import os
import sys

import numpy as np
import gguf

SRC_DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "models",
                           "stories260K.gguf")


def read_source(path):
    """stories260K: tensors in numpy order (out, in), hyperparameters, vocabulary."""
    r = gguf.GGUFReader(path)

    def field(name):
        f = r.fields[name]
        return f.parts[f.data[0]][0] if len(f.data) == 1 else None

    hp = dict(n_embd=int(field("llama.embedding_length")), n_ff=int(field("llama.feed_forward_length")),
              n_head=int(field("llama.attention.head_count")), n_head_kv=int(field("llama.attention.head_count_kv")),
              n_layer=int(field("llama.block_count")), eps=float(field("llama.attention.layer_norm_rms_epsilon")),
              n_rot=int(field("llama.rope.dimension_count")))
    w = {t.name: np.array(t.data, dtype=np.float32) for t in r.tensors}
    f = r.fields["tokenizer.ggml.tokens"]
    tokens = [bytes(f.parts[i]) for i in f.data]
    f = r.fields["tokenizer.ggml.scores"]
    scores = [float(f.parts[i][0]) for i in f.data]
    f = r.fields["tokenizer.ggml.token_type"]
    types = [int(f.parts[i][0]) for i in f.data]
    return hp, w, (tokens, scores, types)


class Lift:
    """Maps of the small model's pieces into a wider model (see the module comment)."""

    def __init__(self, hp, width, n_head, head_dim, rng):
        self.hp, self.width, self.n_head, self.head_dim = hp, width, n_head, head_dim
        d0 = hp["n_embd"]
        q, _ = np.linalg.qr(rng.standard_normal((width, d0)))
        self.P = q.astype(np.float64)                       # (width, d0), orthonormal columns
        self.norm_scale = np.sqrt(width / d0)               # RMS over width vs over d0
        self.hd0 = d0 // hp["n_head"]
        self.group0 = hp["n_head"] // hp["n_head_kv"]
        self.group = n_head // hp["n_head_kv"]
        # Head dimension d of a small head -> dimension in the wide head: RoPE pair i -> pair i·step.
        step = (head_dim // 2) // (self.hd0 // 2)
        self.rope_dim = [2 * (d // 2) * step + d % 2 for d in range(self.hd0)]

    def head(self, h):
        """Small query head h -> wide query head, in the same KV group."""
        return self.group * (h // self.group0) + h % self.group0

    def read(self, W, gain):
        """A matrix reading the normed residual: W·diag(gain)·Pᵀ, rescaled for the wider norm."""
        return (W.astype(np.float64) * gain[None, :]) @ self.P.T / self.norm_scale

    def write(self, W):
        """A matrix writing into the residual: P·W."""
        return self.P @ W.astype(np.float64)


def filler(rng, n_out, n_in, scale=1.0):
    return rng.standard_normal((n_out, n_in)) * (scale / np.sqrt(n_in))


def lifted_weights(hp, src, lift, n_layer, n_ff, eps, rng):
    """name -> float32 (out, in). Layers >= the source's are all filler; eps 0 and
    n_layer = source layers gives a plain lift (the draft)."""
    d0, ff0, hd, hd0 = hp["n_embd"], hp["n_ff"], lift.head_dim, lift.hd0
    width, n_head, n_kv = lift.width, lift.n_head, hp["n_head_kv"]
    emb = src["token_embd.weight"]
    # Filler outputs land with about eps times a token embedding's length: a
    # filler matrix sends a unit-RMS input to a vector of length ~sqrt(width).
    out_scale = eps * float(np.median(np.linalg.norm(emb, axis=1))) / np.sqrt(width)
    stories_heads = {lift.head(h) for h in range(hp["n_head"])}
    w = {"token_embd.weight": emb.astype(np.float64) @ lift.P.T}
    for il in range(n_layer):
        p = f"blk.{il}."
        real = il < hp["n_layer"]
        g = (lambda n: src[p + n]) if real else None
        wq = filler(rng, n_head * hd, width)
        wk = filler(rng, n_kv * hd, width)
        wv = filler(rng, n_kv * hd, width)
        wo = filler(rng, width, n_head * hd, out_scale)
        gate, up = filler(rng, n_ff, width), filler(rng, n_ff, width)
        down = filler(rng, width, n_ff, out_scale)
        if real:
            q0, k0, v0 = (lift.read(g(n), g("attn_norm.weight")) for n in ("attn_q.weight", "attn_k.weight",
                                                                         "attn_v.weight"))
            o0 = lift.write(g("attn_output.weight"))
            qscale = np.sqrt(hd / hd0)
            for hb in stories_heads:
                wq[hb * hd:(hb + 1) * hd] = 0.0                # a lifted head reads only its own pairs
            for h in range(hp["n_head"]):
                hb = lift.head(h)
                for d in range(hd0):
                    wq[hb * hd + lift.rope_dim[d]] = qscale * q0[h * hd0 + d]
                    wo[:, hb * hd + d] = o0[:, h * hd0 + d]
            for kv in range(n_kv):
                for d in range(hd0):
                    wk[kv * hd + lift.rope_dim[d]] = k0[kv * hd0 + d]
                    wv[kv * hd + d] = v0[kv * hd0 + d]
            gate[:ff0] = lift.read(g("ffn_gate.weight"), g("ffn_norm.weight"))
            up[:ff0] = lift.read(g("ffn_up.weight"), g("ffn_norm.weight"))
            down[:, :ff0] = lift.write(g("ffn_down.weight"))
        w[p + "attn_norm.weight"] = np.ones(width)
        w[p + "attn_q.weight"], w[p + "attn_k.weight"], w[p + "attn_v.weight"] = wq, wk, wv
        w[p + "attn_output.weight"] = wo
        w[p + "ffn_norm.weight"] = np.ones(width)
        w[p + "ffn_gate.weight"], w[p + "ffn_up.weight"], w[p + "ffn_down.weight"] = gate, up, down
    w["output_norm.weight"] = np.ones(width)
    w["output.weight"] = lift.read(src["output.weight"], src["output_norm.weight"])
    return w


def write_model(path, name, hp, vocab, width, n_head, n_kv, head_dim, n_layer, n_ff, eps_norm, weights):
    tokens, scores, types = vocab
    tmp = path + ".tmp"
    gw = gguf.GGUFWriter(tmp, "llama")
    gw.add_name(name)
    gw.add_file_type(int(gguf.LlamaFileType.MOSTLY_F16))
    gw.add_context_length(2048)
    gw.add_embedding_length(width)
    gw.add_block_count(n_layer)
    gw.add_feed_forward_length(n_ff)
    gw.add_head_count(n_head)
    gw.add_head_count_kv(n_kv)
    gw.add_layer_norm_rms_eps(eps_norm)
    gw.add_rope_freq_base(10000.0)
    gw.add_rope_dimension_count(head_dim)
    gw.add_vocab_size(len(tokens))
    gw.add_tokenizer_model("llama")
    gw.add_token_list(tokens)
    gw.add_token_scores(scores)
    gw.add_token_types(types)
    gw.add_bos_token_id(1)
    gw.add_eos_token_id(2)
    gw.add_unk_token_id(0)
    gw.add_add_bos_token(True)
    for tname, t in weights.items():
        gw.add_tensor(tname, t.astype(np.float32) if t.ndim == 1 else t.astype(np.float16))
    gw.write_header_to_file()
    gw.write_kv_data_to_file()
    gw.write_tensors_to_file()
    gw.close()
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--eps", type=float, default=0.6)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--source", default=SRC_DEFAULT)
    a = ap.parse_args()
    hp, src, vocab = read_source(a.source)
    if hp["n_rot"] != hp["n_embd"] // hp["n_head"]:
        sys.exit(f"{a.source}: rope over {hp['n_rot']} of {hp['n_embd'] // hp['n_head']} head dims (expected all)")
    if a.layers < hp["n_layer"]:
        sys.exit(f"--layers {a.layers}: the target needs at least the source's {hp['n_layer']} layers")
    os.makedirs(a.out_dir, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    d0 = hp["n_embd"]
    for name, width, n_head, n_ff, n_layer, eps in (("spec-draft-f16", 512, 8, 1536, hp["n_layer"], 0.0),
                                                    ("spec-target-f16", 2048, 32, 5632, a.layers, a.eps)):
        lift = Lift(hp, width, n_head, 64, rng)
        w = lifted_weights(hp, src, lift, n_layer, n_ff, eps, rng)
        path = os.path.join(a.out_dir, name + ".gguf")
        write_model(path, f"stories260K lifted to {width} (eps {eps})", hp, vocab, width, n_head, hp["n_head_kv"], 64,
                    n_layer, n_ff, hp["eps"] * d0 / width, w)
        print(f"{path}: dim {width}, {n_layer} layers, FFN {n_ff}, filler eps {eps}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
