"""Hugging Face model directories with random weights, and the same weights as GGUF.

Each directory is what `save_pretrained` leaves: config.json, model.safetensors (or
two shards and model.safetensors.index.json), tokenizer.json, tokenizer_config.json.
Written with the safetensors, tokenizers and json packages; nothing is downloaded.

  llama    LlamaForCausalLM, F32, GQA, tied head, the LLaMA-2 vocabulary: tokenizer.json
           built from ../shared/models/tokenizer.model the way transformers' LlamaConverter
           does (SentencePiece pieces and scores -> BPE with byte fallback, merges ordered
           by the merged piece's score; Prepend + Replace normalizer; <s> template)
  sharded  MistralForCausalLM, F16, separate lm_head, two shards and an index
  qwen2    Qwen2ForCausalLM, BF16, QKV biases, tied head, a byte-level BPE trained here
           with the Qwen2 split regex (tokenizers' BpeTrainer), NFC normalizer,
           <|endoftext|> <|im_start|> <|im_end|>, vocab_size padded past the tokenizer

The GGUF twin: llama.cpp's convert_hf_to_gguf.py needs torch and transformers,
which are not installed here, so write_gguf() does what it does for these
architectures with the gguf package: the same keys, tensor names, and LLaMA's
q/k row permutation (LlamaModel.permute: reshape(n_head, 2, rows/n_head/2, cols),
swap axes 1 and 2); the tokenizer from tokenizer.model for the LLaMA vocabulary
(_set_vocab_sentencepiece, as for the real LLaMA-2 repositories, which ship it),
and get_vocab_base's token types with tokenizer.ggml.pre "qwen2" for the byte-level one.
"""

import json
import os

import numpy as np

LLAMA_SPECIAL = ["<unk>", "<s>", "</s>"]
QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QWEN_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
              r"|\s*[\r\n]+|\s+(?!\S)|\s+")
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

MODELS = {
    # name: (class, model_type, hidden, heads, kv_heads, layers, ff, dtype, tied, shards)
    "llama": dict(cls="LlamaForCausalLM", model_type="llama", hidden=128, heads=8, kv_heads=2, layers=2,
                  ff=352, dtype="F32", tied=True, shards=1, seed=11),
    "sharded": dict(cls="MistralForCausalLM", model_type="mistral", hidden=96, heads=4, kv_heads=2, layers=3,
                    ff=256, dtype="F16", tied=False, shards=2, seed=12),
    "qwen2": dict(cls="Qwen2ForCausalLM", model_type="qwen2", hidden=64, heads=4, kv_heads=2, layers=2,
                  ff=160, dtype="BF16", tied=True, shards=1, seed=13),
}


# ---------------------------------------------------------------------------
# Tokenizers


def llama_tokenizer(tokenizer_model):
    """tokenizers.Tokenizer for a SentencePiece BPE model, as transformers' LlamaConverter
    (convert_slow_tokenizer.py) builds it: vocab from the pieces, merges from every split of
    every piece into two pieces, sorted by the piece's score (stable, splits by their ids)."""
    import sentencepiece as spm
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors

    sp = spm.SentencePieceProcessor(model_file=tokenizer_model)
    vocab = {sp.id_to_piece(i): i for i in range(sp.vocab_size())}
    scores = {sp.id_to_piece(i): sp.get_score(i) for i in range(sp.vocab_size())}
    merges = []
    for piece, score in scores.items():
        local = [(piece[:k], piece[k:], score) for k in range(1, len(piece))
                 if piece[:k] in vocab and piece[k:] in vocab]
        merges.extend(sorted(local, key=lambda m: (vocab[m[0]], vocab[m[1]])))
    merges = [(a, b) for a, b, _ in sorted(merges, key=lambda m: m[2], reverse=True)]
    tok = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in LLAMA_SPECIAL])
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(content=" ", left=1)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 1)])
    return tok


def qwen_tokenizer(corpus, vocab_size=800):
    """A small byte-level BPE with Qwen2's pre-tokenizer, trained on `corpus` (a list of strings)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False, trim_offsets=False)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=QWEN_SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    return tok


def corpus():
    """Text to train the byte-level vocabulary on: the repository's own documents."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = []
    for name in ("README.md", "DEVELOPERS.md", "BENCHMARKS.md", "man/lowbit.1"):
        path = os.path.join(root, name)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                out.extend(f.read().split("\n\n"))
    return out


# ---------------------------------------------------------------------------
# Weights


def permute(w, n_head, n_head_kv):
    """convert_hf_to_gguf.py's LlamaModel.permute, in numpy."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape))


def make_weights(m, n_vocab):
    """HF name -> float32 array (out, in): N(0, 1/in) matrices, norms near 1."""
    rng = np.random.default_rng(m["seed"])
    e, hd = m["hidden"], m["hidden"] // m["heads"]
    q, kv = m["heads"] * hd, m["kv_heads"] * hd

    def mat(n_out, n_in, scale=1.0):
        return (scale * rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(np.float32)

    def vec(n, mean=1.0, sd=0.1):
        return (mean + sd * rng.standard_normal(n)).astype(np.float32)

    # Embeddings N(0, 0.1^2) and a head of N(0, 1/in): logits of unit-ish spread, so
    # perplexities stay finite enough to compare with llama.cpp's to 1e-3.
    w = {"model.embed_tokens.weight": (0.1 * rng.standard_normal((n_vocab, e))).astype(np.float32)}
    for i in range(m["layers"]):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = vec(e)
        w[p + "self_attn.q_proj.weight"] = mat(q, e)
        w[p + "self_attn.k_proj.weight"] = mat(kv, e)
        w[p + "self_attn.v_proj.weight"] = mat(kv, e)
        if m["model_type"] == "qwen2":
            w[p + "self_attn.q_proj.bias"] = vec(q, 0.0, 0.5)
            w[p + "self_attn.k_proj.bias"] = vec(kv, 0.0, 0.5)
            w[p + "self_attn.v_proj.bias"] = vec(kv, 0.0, 0.5)
        w[p + "self_attn.o_proj.weight"] = mat(e, q)
        w[p + "post_attention_layernorm.weight"] = vec(e)
        w[p + "mlp.gate_proj.weight"] = mat(m["ff"], e)
        w[p + "mlp.up_proj.weight"] = mat(m["ff"], e)
        w[p + "mlp.down_proj.weight"] = mat(e, m["ff"])
    w["model.norm.weight"] = vec(e)
    if not m["tied"]:
        w["lm_head.weight"] = mat(n_vocab, e)
    return w


def to_dtype(w, dtype):
    """(array in the file's dtype, its raw uint16 view for BF16)."""
    if dtype == "F32":
        return w.astype(np.float32)
    if dtype == "F16":
        return w.astype(np.float16)
    # BF16, round to nearest even, as torch does.
    u = w.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def save_safetensors(path, tensors, dtype):
    """Write with the safetensors package. numpy has no bfloat16, so the tensors go
    through safetensors' own serializer with the dtype named explicitly."""
    from safetensors import serialize_file
    from safetensors.numpy import TensorSpec

    name = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[dtype]
    arrays = {k: np.ascontiguousarray(a) for k, a in tensors.items()}  # alive until written
    specs = {k: TensorSpec(dtype=name, shape=a.shape, data_ptr=a.ctypes.data, data_len=a.nbytes)
             for k, a in arrays.items()}
    serialize_file(specs, path, metadata={"format": "pt"})


# ---------------------------------------------------------------------------
# Directories


def write_hf(out_dir, name, tokenizer_model):
    """Write the directory for MODELS[name]. Returns (weights in float32 as stored, tokenizer)."""
    m = MODELS[name]
    os.makedirs(out_dir, exist_ok=True)
    if m["model_type"] == "qwen2":
        tok = qwen_tokenizer(corpus())
        n_tok = tok.get_vocab_size(with_added_tokens=True)
        n_vocab = (n_tok + 63) // 64 * 64 + 64  # padded past the tokenizer, as Qwen2's 151936
        eos = tok.token_to_id("<|im_end|>")
        tc = {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
              "add_prefix_space": False, "chat_template": CHATML, "model_max_length": 32768,
              "tokenizer_class": "Qwen2Tokenizer"}
        cfg_extra = {"bos_token_id": tok.token_to_id("<|endoftext|>"), "eos_token_id": eos,
                     "rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "max_position_embeddings": 32768,
                     "sliding_window": 32768, "use_sliding_window": False}
    else:
        tok = llama_tokenizer(tokenizer_model)
        n_vocab = tok.get_vocab_size(with_added_tokens=True)
        tc = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
              "unk_token": "<unk>", "legacy": True, "model_max_length": 1000000000000000019884624838656,
              "tokenizer_class": "LlamaTokenizer"}
        cfg_extra = {"bos_token_id": 1, "eos_token_id": 2, "rope_theta": 10000.0, "rms_norm_eps": 1e-5,
                     "max_position_embeddings": 4096, "rope_scaling": None, "head_dim": None}
        if m["model_type"] == "mistral":
            cfg_extra.update(sliding_window=4096)
    cfg = {"architectures": [m["cls"]], "model_type": m["model_type"], "hidden_size": m["hidden"],
           "intermediate_size": m["ff"], "num_hidden_layers": m["layers"], "num_attention_heads": m["heads"],
           "num_key_value_heads": m["kv_heads"], "vocab_size": n_vocab, "tie_word_embeddings": m["tied"],
           "hidden_act": "silu", "torch_dtype": {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[m["dtype"]],
           "transformers_version": "4.44.0", **cfg_extra}
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(tc, f, indent=2)
    tok.save(os.path.join(out_dir, "tokenizer.json"))

    w = make_weights(m, n_vocab)
    stored = {k: to_dtype(v, m["dtype"]) for k, v in w.items()}
    if m["shards"] == 1:
        save_safetensors(os.path.join(out_dir, "model.safetensors"), stored, m["dtype"])
    else:
        names = list(stored)
        half = len(names) // 2
        parts = [names[:half], names[half:]]
        weight_map = {}
        for i, part in enumerate(parts):
            fname = f"model-{i + 1:05d}-of-{len(parts):05d}.safetensors"
            save_safetensors(os.path.join(out_dir, fname), {k: stored[k] for k in part}, m["dtype"])
            weight_map.update({k: fname for k in part})
        total = sum(a.nbytes for a in stored.values())
        with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    return stored, tok


HF_TO_GGUF = {
    "input_layernorm.weight": "attn_norm.weight", "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight", "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight", "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias", "self_attn.v_proj.bias": "attn_v.bias",
    "post_attention_layernorm.weight": "ffn_norm.weight", "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight",
}


def gguf_name(hf):
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    parts = hf.split(".", 3)  # model, layers, N, rest
    return f"blk.{parts[2]}.{HF_TO_GGUF[parts[3]]}"


def write_gguf(path, name, stored, tok, tokenizer_model):
    """The GGUF convert_hf_to_gguf.py would write from the directory (see the module doc)."""
    import gguf

    m = MODELS[name]
    arch = "qwen2" if m["model_type"] == "qwen2" else "llama"
    hd = m["hidden"] // m["heads"]
    n_vocab = stored["model.embed_tokens.weight"].shape[0]
    gw = gguf.GGUFWriter(path, arch)
    gw.add_name(name)
    gw.add_block_count(m["layers"])
    gw.add_context_length(32768 if arch == "qwen2" else 4096)
    gw.add_embedding_length(m["hidden"])
    gw.add_feed_forward_length(m["ff"])
    gw.add_head_count(m["heads"])
    gw.add_head_count_kv(m["kv_heads"])
    gw.add_rope_freq_base(1000000.0 if arch == "qwen2" else 10000.0)
    gw.add_layer_norm_rms_eps(1e-6 if arch == "qwen2" else 1e-5)
    gw.add_file_type({"F32": 0, "F16": 1, "BF16": 32}[m["dtype"]])
    if arch == "llama":
        gw.add_vocab_size(n_vocab)
        gw.add_rope_dimension_count(hd)
        from make_test_model import llama_vocab
        tokens, scores, types = llama_vocab(tokenizer_model)
        gw.add_tokenizer_model("llama")
        gw.add_tokenizer_pre("default")
        gw.add_token_list(tokens)
        gw.add_token_scores(scores)
        gw.add_token_types(types)
        gw.add_bos_token_id(1)
        gw.add_eos_token_id(2)
        gw.add_unk_token_id(0)
        gw.add_add_bos_token(True)
        gw.add_add_eos_token(False)
    else:
        # get_vocab_base: added tokens special -> CONTROL, the rest NORMAL, gaps "[PADn]" UNUSED.
        vocab = tok.get_vocab(with_added_tokens=True)
        rev = {i: t for t, i in vocab.items()}
        added = {i: a for i, a in tok.get_added_tokens_decoder().items()}
        tokens, types = [], []
        for i in range(n_vocab):
            if i not in rev:
                tokens.append(f"[PAD{i}]")
                types.append(gguf.TokenType.UNUSED)
            else:
                tokens.append(rev[i])
                types.append(gguf.TokenType.CONTROL if i in added and added[i].special else gguf.TokenType.NORMAL)
        merges = json.loads(tok.to_str())["model"]["merges"]
        merges = [" ".join(p) if isinstance(p, list) else p for p in merges]
        gw.add_tokenizer_model("gpt2")
        gw.add_tokenizer_pre("qwen2")
        gw.add_token_list(tokens)
        gw.add_token_types(types)
        gw.add_token_merges(merges)
        gw.add_bos_token_id(vocab["<|endoftext|>"])
        gw.add_eos_token_id(vocab["<|im_end|>"])
        gw.add_pad_token_id(vocab["<|endoftext|>"])
        gw.add_chat_template(CHATML)
    for hf, a in stored.items():
        g = gguf_name(hf)
        if arch == "llama" and hf.endswith(("q_proj.weight", "q_proj.bias")):
            a = permute(a, m["heads"], m["heads"])
        if arch == "llama" and hf.endswith(("k_proj.weight", "k_proj.bias")):
            a = permute(a, m["heads"], m["kv_heads"])
        if a.ndim == 1:  # norms and biases: F32, as the converter writes them
            a = a.astype(np.float32) if m["dtype"] != "BF16" else (a.astype(np.uint32) << 16).view(np.float32)
            gw.add_tensor(g, a)
        elif m["dtype"] == "BF16":
            gw.add_tensor(g, a, raw_shape=a.shape, raw_dtype=gguf.GGMLQuantizationType.BF16)
        else:
            gw.add_tensor(g, a)
    gw.write_header_to_file()
    gw.write_kv_data_to_file()
    gw.write_tensors_to_file()
    gw.close()
