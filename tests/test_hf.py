"""Hugging Face model directories (engine/hf.c) against the same weights as GGUF.

make_hf_model.py writes three directories with random weights and, for each, the
GGUF that convert_hf_to_gguf.py would write from it (its steps done with the gguf
package: the converter needs torch and transformers, which are not installed):
  llama    F32, tied head, the LLaMA-2 vocabulary as tokenizer.json
  sharded  mistral, F16, separate head, two shards and an index
  qwen2    BF16, QKV biases, byte-level BPE (Qwen2 split regex), chat template

Checks:
1. `lowbit info` reads each directory.
2. Tokenization of 17 strings (spaces, newlines, digits, accents, CJK, emoji, special
   tokens written in the text) equals the `tokenizers` package's on tokenizer.json,
   and equals ours on the GGUF twin (for LLaMA that one is built from tokenizer.model
   with SentencePiece's own scores, so the merge-rank scores hf.c derives are checked
   against the real ones).
3. Logits of every position of a prompt: directory vs GGUF twin, relative error
   <= 1e-5 (the bytes are the same after the q/k permutation, so they are equal);
   greedy `lowbit run` and `lowbit perplexity` agree too.
4. `lowbit quantize -m DIR --profile q8_0`: the gguf package reads the file, every
   matrix is Q8_0, every tensor's bytes equal those of quantizing the GGUF twin, and
   layer 0's attn_q dequantizes to the permuted HF q_proj within Q8_0's rounding.
   With llama.cpp's tools built: llama-perplexity on that file equals `lowbit
   perplexity` within 1e-3 relative, and llama-simple generates from it.
5. Broken directories give one line on stderr naming the file (and the field):
   truncated safetensors, bad JSON, a missing shard, an unsupported dtype, an
   unsupported architecture, a missing config field, a missing tensor, a shape that
   disagrees with config.json, a missing tokenizer.json, a tensor in the wrong shard.
"""

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import lbtest as T

T.require("numpy", "gguf", "safetensors", "tokenizers", "sentencepiece")

import numpy as np  # noqa: E402
import gguf  # noqa: E402
import tokenizers  # noqa: E402

import make_hf_model as M  # noqa: E402

LOWBIT = T.tool("lowbit")
TOK_DUMP = T.tool("tok_dump")
LOGITS_DUMP = T.tool("logits_dump")
if not (LOWBIT and TOK_DUMP and LOGITS_DUMP):
    T.bail("lowbit, tests/tok_dump or tests/logits_dump not built")
TOKENIZER_MODEL = T.shared("tokenizer.model")

TEXTS = [
    "Hello world! Once upon a time, there was a little girl named Lily.",
    "  leading spaces and  double  spaces ",
    "tabs\tand\nnewlines\n\n\nhere\r\n",
    "numbers 1 12 123 1234 12345 3.14159 -7",
    "I've been 'told' he's there, we'LL see; DON'T",
    "accents: café naïve über señor Ærøskøbing",
    "CJK 日本語のテキスト 中文 한국어",
    "emoji 🚀🦙 😶‍🌫️ ✅",
    "<s>special</s> tokens <unk> in text",
    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    "code: for (int i = 0; i < n; i++) { x[i] = y[i] * 2; }",
    "",
    " ",
    "\n",
    "a",
    "ÿ\u0100 control \x01\x02 bytes",
    "mixed-CASE Words, punctuation!!! ??? ... ---",
]
PROMPT = ("The quick brown fox jumps over the lazy dog while the cat sleeps quietly on a warm "
          "windowsill, dreaming of mice, milk and the long summer afternoons.")


def llama_bin():
    for d in (os.environ.get("LLAMA_BIN"), "/tmp/lowbit-bench/llama.cpp-build/bin"):
        if d and os.path.isfile(os.path.join(d, "llama-perplexity")):
            return d
    return None


def rel_err(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def tok_ids(vocab, texts):
    """Our ids for each text, BOS as the tokenizer adds it, special tokens parsed."""
    data = b"".join(t.encode("utf-8") + b"\0" for t in texts)
    p = subprocess.run([TOK_DUMP, vocab, "--special", "--nul"], input=data, capture_output=True, timeout=120)
    if p.returncode != 0:
        return None, p.stderr.decode(errors="replace")
    lines = p.stdout.decode().split("\n")[:len(texts)]
    return [[int(x) for x in line.split()] for line in lines], ""


def logits(model, ids, path):
    r = T.run([LOGITS_DUMP, model, path] + ids)
    if r.returncode != 0:
        return None, r.stderr.strip()
    return np.fromfile(path, dtype=np.float32).reshape(len(ids), -1), ""


def one_line_error(args, needles):
    """Run lowbit; it must fail with one stderr line holding every needle."""
    r = T.run([LOWBIT] + args)
    lines = r.stderr.strip().split("\n")
    ok = r.returncode != 0 and len(lines) == 1 and all(n in lines[0] for n in needles)
    return ok, lines[0] if lines else ""


def main():
    tmp = tempfile.mkdtemp(prefix="lowbit-hf-")
    try:
        run_checks(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return T.finish()


def run_checks(tmp):
    dirs, twins, stored, toks = {}, {}, {}, {}
    for name in M.MODELS:
        d, g = os.path.join(tmp, name), os.path.join(tmp, name + ".gguf")
        stored[name], toks[name] = M.write_hf(d, name, TOKENIZER_MODEL)
        M.write_gguf(g, name, stored[name], toks[name], TOKENIZER_MODEL)
        dirs[name], twins[name] = d, g

    # 1. info
    for name, d in dirs.items():
        r = T.run([LOWBIT, "info", "-m", d, "--no-tensors"])
        arch = "qwen2" if name == "qwen2" else "llama"
        head = "tied" if M.MODELS[name]["tied"] else "separate"
        T.check(f"info {name}: reads the directory", r.returncode == 0 and "(hf)" in r.stdout and
                f"architecture:    {arch}" in r.stdout and head in r.stdout, (r.stdout + r.stderr)[-300:])

    # 2. tokenization
    for name in ("llama", "qwen2"):
        ref = [toks[name].encode(t).ids for t in TEXTS]
        ours, err = tok_ids(dirs[name], TEXTS)
        twin, err2 = tok_ids(twins[name], TEXTS)
        bad = [i for i in range(len(TEXTS)) if ours is None or ours[i] != ref[i]]
        T.check(f"tokenize {name}: {len(TEXTS)} strings equal the tokenizers package's", ours and not bad,
                err or (f"first difference: {TEXTS[bad[0]]!r}: ours {ours[bad[0]]} tokenizers {ref[bad[0]]}"
                        if bad else ""))
        T.check(f"tokenize {name}: equal to the GGUF twin's", ours is not None and ours == twin, err2)

    r = T.run([LOWBIT, "info", "-m", dirs["qwen2"], "--no-tensors"])
    im_end = toks["qwen2"].token_to_id("<|im_end|>")
    T.check("qwen2: eos from tokenizer_config.json, chat template from it, vocab padded to config's",
            f"eos {im_end}" in r.stdout and "tokenizer.chat_template" in r.stdout and
            f"{stored['qwen2']['model.embed_tokens.weight'].shape[0]} tokens" in r.stdout, r.stdout[:400])

    # 3. logits, greedy text, perplexity
    for name in M.MODELS:
        ids = [str(i) for i in toks[name].encode(PROMPT).ids]
        a, e1 = logits(dirs[name], ids, os.path.join(tmp, "a.f32"))
        b, e2 = logits(twins[name], ids, os.path.join(tmp, "b.f32"))
        ok = a is not None and b is not None and a.shape == b.shape
        err = rel_err(a, b) if ok else float("inf")
        T.check(f"logits {name}: directory vs GGUF twin, {len(ids)} positions, relative error {err:.1e} <= 1e-5",
                ok and err <= 1e-5, e1 or e2)
        runs = [T.run([LOWBIT, "run", "-m", m, "-p", PROMPT, "-n", "12", "--temp", "0"]) for m in (dirs[name], twins[name])]
        T.check(f"run {name}: greedy text equals the GGUF twin's", runs[0].returncode == 0 and
                runs[0].stdout == runs[1].stdout and runs[0].stdout.strip() != "", runs[0].stderr[-300:])

    text = os.path.join(tmp, "text.txt")
    with open(text, "w") as f:
        f.write("\n\n".join(M.corpus())[:4000])

    # 16 chunks: this llama-perplexity build prints no final estimate when it runs
    # out of text on the last chunk of a model that adds no BOS.
    def ppl(model, ctx=64):
        r = T.run([LOWBIT, "perplexity", "-m", model, "-f", text, "--ctx", str(ctx), "--chunks", "16", "--json"])
        try:
            return json.loads(r.stdout)["ppl"], r.stderr
        except (ValueError, KeyError):
            return None, r.stderr[-300:]

    p_dir, e = ppl(dirs["sharded"])
    p_twin, _ = ppl(twins["sharded"])
    T.check(f"perplexity sharded: directory {p_dir} equals GGUF twin {p_twin}", p_dir is not None and p_dir == p_twin, e)

    # 4. quantize
    lbin = llama_bin()
    for name in ("llama", "qwen2"):
        out, out_twin = os.path.join(tmp, name + "-q8.gguf"), os.path.join(tmp, name + "-twin-q8.gguf")
        r = T.run([LOWBIT, "quantize", "-m", dirs[name], "--profile", "q8_0", "-o", out, "-q"])
        r2 = T.run([LOWBIT, "quantize", "-m", twins[name], "--profile", "q8_0", "-o", out_twin, "-q"])
        if not T.check(f"quantize {name}: -m DIR --profile q8_0 writes a file", r.returncode == 0 and r2.returncode == 0,
                       (r.stderr + r2.stderr)[-300:]):
            continue
        q, qt = gguf.GGUFReader(out), gguf.GGUFReader(out_twin)
        mats = [t for t in q.tensors if len(t.shape) == 2]
        T.check(f"quantize {name}: the gguf package reads it; all {len(mats)} matrices Q8_0",
                mats and all(t.tensor_type == gguf.GGMLQuantizationType.Q8_0 for t in mats))
        tw = {t.name: t for t in qt.tensors}
        same = [t.name for t in q.tensors if t.name in tw and bytes(t.data.tobytes()) == bytes(tw[t.name].data.tobytes())
                and t.tensor_type == tw[t.name].tensor_type]
        T.check(f"quantize {name}: all {len(q.tensors)} tensors byte-identical to quantizing the GGUF twin",
                len(same) == len(q.tensors) == len(qt.tensors), f"{len(same)} of {len(q.tensors)}")
        m = M.MODELS[name]
        wq = stored[name]["model.layers.0.self_attn.q_proj.weight"]
        wq = wq.astype(np.float32) if wq.dtype != np.uint16 else (wq.astype(np.uint32) << 16).view(np.float32)
        if name != "qwen2":
            wq = M.permute(wq, m["heads"], m["heads"])
        t0 = next(t for t in q.tensors if t.name == "blk.0.attn_q.weight")
        deq = gguf.quants.dequantize(t0.data, t0.tensor_type).reshape(wq.shape)
        # Q8_0: d = amax/127 stored as F16, so |w - q·f16(d)| <= d/2 + 127·d·2^-11 per block of 32.
        d = np.abs(wq).reshape(-1, 32).max(axis=1).repeat(32).reshape(wq.shape) / 127
        bound = d * (0.5 + 127 * 2.0**-11) + 1e-7
        T.check(f"quantize {name}: blk.0.attn_q dequantizes to the {'permuted ' if name != 'qwen2' else ''}q_proj "
                "within Q8_0 rounding", bool(np.all(np.abs(deq - wq) <= bound)),
                f"max err {np.abs(deq - wq).max():.2e}")
        if not lbin:
            T.skip(f"llama.cpp on {name}-q8.gguf", "no llama-perplexity (set LLAMA_BIN)")
            continue
        env_lib = dict(os.environ, LD_LIBRARY_PATH=lbin)
        lp = subprocess.run([os.path.join(lbin, "llama-perplexity"), "-m", out, "-f", text, "-c", "64", "-b", "64",
                             "--chunks", "16", "-t", "2"], capture_output=True, text=True,
                             errors="replace", env=env_lib, timeout=600)
        ref = None
        for line in (lp.stdout + lp.stderr).splitlines():
            if "Final estimate: PPL = " in line:
                ref = float(line.split("PPL = ")[1].split()[0])
        ours, e = ppl(out)
        if ref is None:
            T.skip(f"llama-perplexity on {name}-q8.gguf", "it printed no estimate: " + (lp.stderr or "")[-200:])
        else:
            T.check(f"llama.cpp {name}: llama-perplexity {ref} equals lowbit's {ours} within 1e-3",
                    ours is not None and abs(ours - ref) <= 1e-3 * ref, e)
        ls = subprocess.run([os.path.join(lbin, "llama-simple"), "-m", out, "-n", "8", "Hello world"],
                            capture_output=True, text=True,
                            errors="replace", env=env_lib, timeout=600)
        T.check(f"llama.cpp {name}: llama-simple generates from the quantized file", ls.returncode == 0 and
                "Hello" in ls.stdout, ls.stderr[-300:])

    # 5. broken directories
    def clone(name, tag):
        d = os.path.join(tmp, f"{name}-{tag}")
        shutil.copytree(dirs[name], d)
        return d

    def edit_json(path, fn):
        with open(path) as f:
            j = json.load(f)
        fn(j)
        with open(path, "w") as f:
            json.dump(j, f)

    d = clone("qwen2", "trunc")
    st = os.path.join(d, "model.safetensors")
    os.truncate(st, os.path.getsize(st) - 100)
    ok, line = one_line_error(["info", "-m", d], [st, "truncated"])
    T.check("error: truncated model.safetensors", ok, line)

    d = clone("qwen2", "badjson")
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write('{"model_type": "qwen2", "hidden_size": 64,}')
    ok, line = one_line_error(["info", "-m", d], [os.path.join(d, "config.json"), "byte 42", "expected"])
    T.check("error: trailing comma in config.json, with the byte offset", ok, line)

    d = clone("qwen2", "badtok")
    with open(os.path.join(d, "tokenizer.json"), "r+") as f:
        f.truncate(5000)
    ok, line = one_line_error(["info", "-m", d], [os.path.join(d, "tokenizer.json"), "byte", "end of input"])
    T.check("error: truncated tokenizer.json", ok, line)

    d = clone("sharded", "noshard")
    os.remove(os.path.join(d, "model-00002-of-00002.safetensors"))
    ok, line = one_line_error(["quantize", "-m", d, "--profile", "q8_0", "-o", os.path.join(tmp, "x.gguf")],
                              ["model-00002-of-00002.safetensors", "cannot open"])
    T.check("error: missing shard (quantize)", ok, line)

    d = clone("sharded", "wrongshard")

    def move(j):
        k = next(k for k, v in j["weight_map"].items() if v.startswith("model-00002"))
        j["weight_map"][k] = "model-00001-of-00002.safetensors"
    edit_json(os.path.join(d, "model.safetensors.index.json"), move)
    ok, line = one_line_error(["info", "-m", d], ["model.safetensors.index.json", "index says"])
    T.check("error: index puts a tensor in the wrong shard", ok, line)

    d = clone("qwen2", "f64")
    from safetensors.numpy import load_file, save_file
    t = load_file(os.path.join(dirs["llama"], "model.safetensors"))
    t = {k: (v.astype(np.float64) if k == "model.norm.weight" else v) for k, v in t.items()}
    shutil.rmtree(d)
    shutil.copytree(dirs["llama"], d)
    save_file(t, os.path.join(d, "model.safetensors"))
    ok, line = one_line_error(["info", "-m", d], [os.path.join(d, "model.safetensors"), "model.norm.weight",
                                                  "F64 unsupported"])
    T.check("error: F64 tensor", ok, line)

    d = clone("qwen2", "gemma")
    edit_json(os.path.join(d, "config.json"), lambda j: j.update(model_type="gemma"))
    ok, line = one_line_error(["info", "-m", d], ["config.json", "model_type 'gemma' unsupported"])
    T.check("error: unsupported model_type", ok, line)

    d = clone("qwen2", "nolayers")
    edit_json(os.path.join(d, "config.json"), lambda j: j.pop("num_hidden_layers"))
    ok, line = one_line_error(["info", "-m", d], ["config.json", "'num_hidden_layers' missing"])
    T.check("error: missing config field", ok, line)

    d = clone("qwen2", "shape")
    edit_json(os.path.join(d, "config.json"), lambda j: j.update(intermediate_size=128))
    ok, line = one_line_error(["info", "-m", d], ["model.safetensors", "model.layers.0.mlp.gate_proj.weight",
                                                  "has shape [160, 64] (expected [128, 64]"])
    T.check("error: shape disagrees with config.json", ok, line)

    d = clone("qwen2", "notensor")
    with open(os.path.join(dirs["qwen2"], "model.safetensors"), "rb") as f:  # BF16: edited as bytes
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    drop = "model.layers.1.mlp.up_proj.weight"
    b0, b1 = header[drop]["data_offsets"]
    data = raw[8 + n:]
    data = data[:b0] + data[b1:]
    del header[drop]
    for k, v in header.items():
        if k != "__metadata__" and v["data_offsets"][0] >= b1:
            v["data_offsets"] = [v["data_offsets"][0] - (b1 - b0), v["data_offsets"][1] - (b1 - b0)]
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)
    ok, line = one_line_error(["info", "-m", d], ["model.safetensors", f"tensor '{drop}' missing"])
    T.check("error: missing tensor", ok, line)

    d = clone("qwen2", "notok")
    os.remove(os.path.join(d, "tokenizer.json"))
    ok, line = one_line_error(["run", "-m", d, "-p", "x", "-n", "1"], [os.path.join(d, "tokenizer.json"), "cannot open"])
    T.check("error: missing tokenizer.json (run)", ok, line)


if __name__ == "__main__":
    sys.exit(main())
