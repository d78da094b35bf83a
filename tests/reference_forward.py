"""An independent forward pass of llama / qwen2 GGUF models in numpy.

This is the reference the engine's logits are compared with (tests/test_forward.py).
It shares no code with the engine: the file is read with gguf.GGUFReader, every
tensor is dequantized with gguf.quants.dequantize, and all arithmetic is float64.
The math follows llama.cpp's graph for these architectures (src/llama-model.cpp,
src/llama-graph.cpp):

    x = token_embd[ids]
    per layer:  h = rmsnorm(x) * attn_norm
                q, k, v = h @ Wq.T (+bq), h @ Wk.T (+bk), h @ Wv.T (+bv)   (biases: qwen2)
                q, k = rope(q, pos), rope(k, pos)
                x += causal_gqa_attention(q, k, v) @ Wo.T
                h = rmsnorm(x) * ffn_norm
                x += (silu(h @ Wgate.T) * (h @ Wup.T)) @ Wdown.T
    logits = (rmsnorm(x) * output_norm) @ Wout.T     (Wout = token_embd when tied)

Optional emulations let a test estimate how much error the engine's legitimate
shortcuts add (activations rounded to Q8_0/Q8_K or F16 before a quantized dot
product, an F16 KV cache); they are off by default.

Usage as a script:  reference_forward.py MODEL.gguf ID...  prints the argmax per position;
                    reference_forward.py MODEL.gguf --greedy N ID...  prints N generated ids.
"""

import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT


# ---------------------------------------------------------------------------
# Reading the file


def _field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    v = f.contents()
    return v


class Model:
    """Hyperparameters and float64 weights of a GGUF file.

    Weight matrices are numpy arrays of shape (out, in): GGUF stores ne[0] = in
    (the row length), which GGUFReader exposes as the last numpy axis.
    """

    def __init__(self, path):
        r = gguf.GGUFReader(path)
        self.path = path
        self.arch = _field(r, "general.architecture")
        if self.arch not in ("llama", "qwen2"):
            raise ValueError(f"{path}: general.architecture {self.arch!r} (expected llama or qwen2)")
        a = self.arch
        self.n_embd = int(_field(r, f"{a}.embedding_length"))
        self.n_layer = int(_field(r, f"{a}.block_count"))
        self.n_ff = int(_field(r, f"{a}.feed_forward_length"))
        self.n_head = int(_field(r, f"{a}.attention.head_count"))
        self.n_head_kv = int(_field(r, f"{a}.attention.head_count_kv", self.n_head))
        self.head_dim = self.n_embd // self.n_head
        self.n_rot = int(_field(r, f"{a}.rope.dimension_count", self.head_dim))
        self.eps = float(_field(r, f"{a}.attention.layer_norm_rms_epsilon", 1e-5))
        self.rope_base = float(_field(r, f"{a}.rope.freq_base", 10000.0))
        scaling = _field(r, f"{a}.rope.scaling.type", "none")
        factor = float(_field(r, f"{a}.rope.scaling.factor", 0.0) or 0.0)
        if scaling == "linear" and factor > 0:
            self.rope_scale = factor
        elif scaling in ("none", None) or factor in (0.0, 1.0):
            self.rope_scale = 1.0
        else:
            raise ValueError(f"{path}: rope scaling {scaling!r} not supported by the reference")
        # llama.cpp: LLAMA_ROPE_TYPE_NORM for llama, LLAMA_ROPE_TYPE_NEOX for qwen2.
        self.rope_neox = a == "qwen2"
        self.bos_id = _field(r, "tokenizer.ggml.bos_token_id")
        self.eos_id = _field(r, "tokenizer.ggml.eos_token_id")

        self.types = {}  # tensor name -> ggml type, as stored
        self.w = {}      # tensor name -> float64 array
        for t in r.tensors:
            self.types[t.name] = QT(t.tensor_type)
            deq = gguf.quants.dequantize(t.data, t.tensor_type)
            shape = tuple(int(d) for d in reversed(t.shape.tolist()))  # numpy order
            self.w[t.name] = np.asarray(deq, dtype=np.float64).reshape(shape)
        self.tied = "output.weight" not in self.w
        self.n_vocab = self.w["token_embd.weight"].shape[0]
        if self.n_rot > self.head_dim or self.n_rot % 2:
            raise ValueError(f"{path}: rope.dimension_count {self.n_rot} (head_dim {self.head_dim})")

    def out_weight(self):
        return self.w["token_embd.weight"] if self.tied else self.w["output.weight"]


# ---------------------------------------------------------------------------
# Building blocks


def rmsnorm(x, w, eps):
    """x / sqrt(mean(x^2) + eps) * w over the last axis."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x, pos, n_rot, base, scale, neox):
    """Rotary embedding of x: (n_tokens, n_heads, head_dim) at positions pos.

    theta_i = (pos / scale) * base^(-2i/n_rot), i in [0, n_rot/2). NORMAL style
    (llama) rotates adjacent pairs (x[2i], x[2i+1]); NEOX style (qwen2) rotates
    (x[i], x[i + n_rot/2]). Dimensions past n_rot pass through.
    """
    half = n_rot // 2
    inv = base ** (-2.0 * np.arange(half, dtype=np.float64) / n_rot)
    theta = (np.asarray(pos, dtype=np.float64) / scale)[:, None] * inv[None, :]  # (n, half)
    cos = np.cos(theta)[:, None, :]
    sin = np.sin(theta)[:, None, :]
    out = x.copy()
    if neox:
        a, b = x[..., :half], x[..., half:n_rot]
        out[..., :half] = a * cos - b * sin
        out[..., half:n_rot] = a * sin + b * cos
    else:
        a, b = x[..., 0:n_rot:2], x[..., 1:n_rot:2]
        out[..., 0:n_rot:2] = a * cos - b * sin
        out[..., 1:n_rot:2] = a * sin + b * cos
    return out


def silu(x):
    return x / (1.0 + np.exp(-x))


def _round_f16(x):
    return x.astype(np.float16).astype(np.float64)


def quantize_activations_q8(x, block):
    """Emulate ggml's rounding of an activation row to Q8_0 (block 32) or Q8_K (block 256):
    d = amax/127, q = round-half-away(x/d), value = q*d. Q8_0 stores d as F16 but
    computes q with the unrounded d (quantize_row_q8_0_ref)."""
    shape = x.shape
    xb = x.reshape(-1, block)
    amax = np.max(np.abs(xb), axis=1, keepdims=True)
    d = amax / 127.0
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(d > 0, xb / np.where(d > 0, d, 1), 0)
    q = np.clip(np.sign(r) * np.floor(np.abs(r) + 0.5), -127, 127)
    if block == 32:
        d = _round_f16(d)
    return (q * d).reshape(shape)


# ---------------------------------------------------------------------------
# The forward pass


class Reference:
    """Forward pass over a whole sequence (no cache: every call starts at position 0).

    emulate_act: None, or a function (x, weight_type) -> x applied to the input of
    every matrix product, to model the engine's activation quantization.
    kv_f16: round K (after RoPE) and V to F16 as an F16 KV cache would.
    """

    def __init__(self, model, emulate_act=None, kv_f16=False):
        self.m = model
        self.emulate_act = emulate_act
        self.kv_f16 = kv_f16

    def _mm(self, x, name, weight=None):
        w = self.m.w[name] if weight is None else weight
        if self.emulate_act is not None:
            x = self.emulate_act(x, self.m.types[name])
        return x @ w.T

    def hidden(self, ids):
        """Final hidden state after output_norm, (n, n_embd) float64."""
        m = self.m
        ids = np.asarray(ids, dtype=np.int64)
        n = len(ids)
        if n == 0 or ids.min() < 0 or ids.max() >= m.n_vocab:
            raise ValueError("token ids out of range")
        pos = np.arange(n)
        hd, nh, nkv = m.head_dim, m.n_head, m.n_head_kv
        group = nh // nkv
        mask = np.triu(np.full((n, n), -np.inf), k=1)  # causal: key j > query i is hidden
        x = m.w["token_embd.weight"][ids].copy()
        for il in range(m.n_layer):
            p = f"blk.{il}."
            h = rmsnorm(x, m.w[p + "attn_norm.weight"], m.eps)
            q = self._mm(h, p + "attn_q.weight")
            k = self._mm(h, p + "attn_k.weight")
            v = self._mm(h, p + "attn_v.weight")
            if p + "attn_q.bias" in m.w:
                q = q + m.w[p + "attn_q.bias"]
                k = k + m.w[p + "attn_k.bias"]
                v = v + m.w[p + "attn_v.bias"]
            q = rope(q.reshape(n, nh, hd), pos, m.n_rot, m.rope_base, m.rope_scale, m.rope_neox)
            k = rope(k.reshape(n, nkv, hd), pos, m.n_rot, m.rope_base, m.rope_scale, m.rope_neox)
            v = v.reshape(n, nkv, hd)
            if self.kv_f16:
                k, v = _round_f16(k), _round_f16(v)
            att = np.empty((n, nh, hd))
            for hh in range(nh):
                kvh = hh // group  # query head hh reads kv head hh // (n_head / n_head_kv)
                s = (q[:, hh, :] @ k[:, kvh, :].T) / np.sqrt(hd) + mask
                s = np.exp(s - s.max(axis=1, keepdims=True))
                s /= s.sum(axis=1, keepdims=True)
                att[:, hh, :] = s @ v[:, kvh, :]
            x = x + self._mm(att.reshape(n, nh * hd), p + "attn_output.weight")
            h = rmsnorm(x, m.w[p + "ffn_norm.weight"], m.eps)
            g = self._mm(h, p + "ffn_gate.weight")
            u = self._mm(h, p + "ffn_up.weight")
            x = x + self._mm(silu(g) * u, p + "ffn_down.weight")
        return rmsnorm(x, m.w["output_norm.weight"], m.eps)

    def logits(self, ids, rows=None):
        """Logits (len(rows), n_vocab) float64; rows=None: every position."""
        h = self.hidden(ids)
        if rows is not None:
            h = h[rows]
        name = "token_embd.weight" if self.m.tied else "output.weight"
        return self._mm(h, name)

    def greedy(self, ids, n_new):
        """Append n_new argmax tokens to ids; returns the new ids only."""
        ids = list(ids)
        out = []
        for _ in range(n_new):
            t = int(np.argmax(self.logits(ids, rows=[len(ids) - 1])[0]))
            out.append(t)
            ids.append(t)
        return out


# Activation rounding the engine may apply before a dot product with a weight of
# the given type (as ggml's vec_dot_type does): Q8_0 for legacy quants, Q8_K for
# k-quants, F16 for F16 weights, nothing for F32.
_LEGACY = {QT.Q4_0, QT.Q4_1, QT.Q5_0, QT.Q5_1, QT.Q8_0}
_KQUANT = {QT.Q2_K, QT.Q3_K, QT.Q4_K, QT.Q5_K, QT.Q6_K}


def ggml_act_emulation(x, wtype):
    if wtype in _LEGACY:
        return quantize_activations_q8(x, 32)
    if wtype in _KQUANT:
        return quantize_activations_q8(x, 256)
    if wtype == QT.F16:
        return _round_f16(x)
    return x


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[-2], file=sys.stderr)
        return 2
    path, rest = argv[1], argv[2:]
    n_greedy = 0
    if rest[0] == "--greedy":
        n_greedy, rest = int(rest[1]), rest[2:]
    ids = [int(t) for t in rest]
    ref = Reference(Model(path))
    if n_greedy:
        print(" ".join(str(t) for t in ref.greedy(ids, n_greedy)))
    else:
        print(" ".join(str(int(t)) for t in np.argmax(ref.logits(ids), axis=1)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
