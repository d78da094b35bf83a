#!/usr/bin/env python3
"""make_models.py — benchmark models with random weights and real shapes, as F16 GGUF.

    bench/make_models.py OUT_DIR [--shape tinyllama|llama7b|small] [--tokenizer tokenizer.model]

Shapes: tinyllama = TinyLlama-1.1B (dim 2048, 22 layers, 32 heads, 4 KV heads, FFN 5632,
vocab 32000); llama7b = LLaMA-2-7B (4096, 32, 32, 32, 11008, 32000); small = a 4-layer
model for quick checks. The vocabulary is the real LLaMA-2 one, read with sentencepiece
from tokenizer.model (../shared/models/tokenizer.model by default), so llama.cpp and
lowbit load the same file. Weights are N(0, 0.02); norms are 1. 2D weights are F16, norms
F32, as llama.cpp's converter writes them. Quantized variants are made from this file
by llama.cpp's llama-quantize (bench/compare.sh), so both programs read identical bytes.
"""
import argparse
import os
import sys

import numpy as np

SHAPES = {
    #            dim   layers heads kv   ffn    ctx
    "small":     (512,  4,     8,    2,   1408,  2048),
    "tinyllama": (2048, 22,    32,   4,   5632,  2048),
    "llama7b":   (4096, 32,    32,   32,  11008, 4096),
}


def vocab(tokenizer_model):
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=tokenizer_model)
    tokens, scores, types = [], [], []
    for i in range(sp.vocab_size()):
        tokens.append(sp.id_to_piece(i).encode("utf-8"))
        scores.append(sp.get_score(i))
        if sp.is_unknown(i):
            types.append(2)
        elif sp.is_control(i):
            types.append(3)
        elif sp.is_byte(i):
            types.append(6)
        else:
            types.append(1)
    return tokens, scores, types


def main():
    import gguf
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--shape", default="tinyllama", choices=sorted(SHAPES))
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--tokenizer", default=os.path.join(here, "..", "..", "shared", "models", "tokenizer.model"))
    args = ap.parse_args()
    dim, layers, heads, kv_heads, ffn, ctx = SHAPES[args.shape]
    tokens, scores, types = vocab(args.tokenizer)
    n_vocab = len(tokens)
    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, f"{args.shape}-f16.gguf")

    w = gguf.GGUFWriter(path, "llama")
    w.add_name(f"lowbit-bench-{args.shape}")
    w.add_context_length(ctx)
    w.add_embedding_length(dim)
    w.add_block_count(layers)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(dim // heads)
    w.add_file_type(1)  # LLAMA_FTYPE_MOSTLY_F16
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)

    hd = dim // heads

    # Tensors are described first and written one at a time afterwards, each
    # from its own seed, so a 7B model (13.5 GB of F16) never sits in memory.
    tensors = [("token_embd.weight", (n_vocab, dim)), ("output_norm.weight", (dim,)), ("output.weight", (n_vocab, dim))]
    for i in range(layers):
        tensors += [(f"blk.{i}.attn_norm.weight", (dim,)), (f"blk.{i}.attn_q.weight", (heads * hd, dim)),
                    (f"blk.{i}.attn_k.weight", (kv_heads * hd, dim)), (f"blk.{i}.attn_v.weight", (kv_heads * hd, dim)),
                    (f"blk.{i}.attn_output.weight", (dim, heads * hd)), (f"blk.{i}.ffn_norm.weight", (dim,)),
                    (f"blk.{i}.ffn_gate.weight", (ffn, dim)), (f"blk.{i}.ffn_up.weight", (ffn, dim)),
                    (f"blk.{i}.ffn_down.weight", (dim, ffn))]

    def data(k, shape):
        if len(shape) == 1:  # norms: 1, f32
            return np.ones(shape, dtype=np.float32)
        # (rows, cols) numpy = GGUF [cols, rows]; N(0, 0.02) as F16
        rng = np.random.default_rng(1234 + k)
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16)

    for name, shape in tensors:
        dtype = np.float32 if len(shape) == 1 else np.float16
        w.add_tensor_info(name, shape, np.dtype(dtype), int(np.prod(shape)) * np.dtype(dtype).itemsize)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for k, (name, shape) in enumerate(tensors):
        w.write_tensor_data(data(k, shape))
    w.close()
    print(path)


if __name__ == "__main__":
    sys.exit(main())
