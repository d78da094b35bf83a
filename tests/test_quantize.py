"""`lowbit quantize` against the gguf package: every shipped profile, on small
F32 llama models written with gguf.GGUFWriter (tests/make_test_model.py).

For each profile the output is read back with gguf.GGUFReader and checked:
- every tensor has the type llama.cpp's rules give it (re-derived below from
  src/llama-quant.cpp, independently of engine/quantize.c);
- gguf.quants.dequantize of every tensor is within the type's expected error
  of the source, and equals the relative error lowbit's table printed;
- every key/value of the input is copied; general.file_type is llama.cpp's
  LLAMA_FTYPE for the profile and general.quantization_version is 2;
- `lowbit run` loads and runs the file, and `lowbit run --profile` on the
  F32 input generates the same tokens.
With $LLAMA_BIN (a llama.cpp build/bin; default: the build in /tmp/lowbit-bench/llama.cpp-build
when present): llama-quantize must write the same types and the same bytes
for every tensor, and llama-simple/llama-cli must load and run the Q4_K_M file.

Models: "llama-quant" (n_embd 256, n_ff 768, untied head: every matrix fits
256-blocks) and "llama-gqa-tied" (n_embd 128, n_ff 352: k-quants fall back,
and the tied token_embd takes the output head's rules).
"""

import json
import os
import re
import subprocess
import sys
import tempfile

import lbtest as T

T.require("numpy", "gguf", "sentencepiece")
import numpy as np  # noqa: E402
import gguf  # noqa: E402
from gguf import GGMLQuantizationType as QT  # noqa: E402

import make_test_model as MTM  # noqa: E402

LOWBIT = T.tool("lowbit") or T.bail("lowbit not built")
LLAMA_BIN = os.environ.get("LLAMA_BIN") or "/tmp/lowbit-bench/llama.cpp-build/bin"


def run(cmd, timeout=120):
    """T.run, with a hang reported as a failed command (exit 124) instead of an exception."""
    try:
        return T.run(cmd, timeout=timeout)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(cmd, 124, "", f"timed out after {timeout} s: {' '.join(map(str, cmd))}")


def llama_tool(*names):
    return next((os.path.join(LLAMA_BIN, n) for n in names if os.access(os.path.join(LLAMA_BIN, n), os.X_OK)),
                None)
# The 512-piece vocabulary of stories260K keeps the embeddings (and the test) small.
TOKENIZER = T.shared("tok512.model")

# profile -> (method's type, llama.cpp LLAMA_FTYPE, rules)
PROFILES = {
    "f16": (QT.F16, 1, None), "bf16": (QT.BF16, 32, None), "q8_0": (QT.Q8_0, 7, "plain"),
    "q4_0": (QT.Q4_0, 2, "plain"), "q4_1": (QT.Q4_1, 3, "plain"), "q5_0": (QT.Q5_0, 8, "plain"),
    "q5_1": (QT.Q5_1, 9, "plain"), "q6_k": (QT.Q6_K, 18, "plain"), "q5_k_m": (QT.Q5_K, 17, "q5_k_m"),
    "q4_k_m": (QT.Q4_K, 15, "q4_k_m"), "q3_k_m": (QT.Q3_K, 12, "q3_k_m"), "q2_k": (QT.Q2_K, 10, "q2_k"),
}

# RMS round-trip error / RMS(x) allowed on Gaussian weights (the engine's
# traits-table tolerances, which are ~1.25x what the quantizers measure).
TOLERANCE = {QT.F32: 0, QT.F16: 3e-4, QT.BF16: 3e-3, QT.Q8_0: 7e-3, QT.Q6_K: 0.023, QT.Q5_K: 0.045,
             QT.Q5_1: 0.048, QT.Q5_0: 0.055, QT.Q4_K: 0.09, QT.Q4_1: 0.10, QT.Q4_0: 0.11, QT.Q3_K: 0.19,
             QT.Q2_K: 0.36}
BLOCK = {t: gguf.GGML_QUANT_SIZES[t][0] for t in TOLERANCE}


def use_more_bits(i, n):
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def expected_type(profile, name, shape, spec):
    """llama_tensor_get_type for the file types we ship (shape in numpy order)."""
    base, _, rules = PROFILES[profile]
    if len(shape) < 2 or not name.endswith("weight") or "_norm.weight" in name:
        return QT.F32
    if rules is None:
        return base
    ne0, n = shape[-1], spec.n_layer
    layer = int(m.group(1)) if (m := re.match(r"blk\.(\d+)\.", name)) else -1
    t = base
    if name == "output.weight" or (spec.tied and name == "token_embd.weight"):
        t = QT.Q8_0 if ne0 % BLOCK[base] else (base if base == QT.Q8_0 else QT.Q6_K)
    elif "attn_v.weight" in name:
        if rules == "q2_k":
            t = QT.Q4_K if spec.n_head // spec.n_head_kv >= 4 else QT.Q3_K
        elif rules == "q3_k_m":
            t = QT.Q5_K if layer < 2 else QT.Q4_K
        elif rules in ("q4_k_m", "q5_k_m") and use_more_bits(layer, n):
            t = QT.Q6_K
    elif "ffn_down" in name:
        if rules == "q2_k":
            t = QT.Q3_K
        elif rules == "q3_k_m":
            t = QT.Q5_K if layer < n // 16 else QT.Q4_K
        elif rules in ("q4_k_m", "q5_k_m") and use_more_bits(layer, n):
            t = QT.Q6_K
    elif "attn_output.weight" in name:
        if rules == "q2_k":
            t = QT.Q3_K
        elif rules == "q3_k_m":
            t = QT.Q4_K
    if ne0 % BLOCK[t]:
        chain = {QT.Q2_K: QT.Q4_0, QT.Q3_K: QT.Q4_0, QT.Q4_K: QT.Q5_0, QT.Q5_K: QT.Q5_1, QT.Q6_K: QT.Q8_0}
        t = chain.get(t, t)
        if ne0 % BLOCK[t]:
            t = QT.F16
    return t


def field_value(reader, key):
    f = reader.fields[key]
    return f.contents() if hasattr(f, "contents") else f.parts[f.data[0]].tolist()


def kv_snapshot(reader):
    skip = {"general.file_type", "general.quantization_version"}
    return {k: repr(field_value(reader, k)) for k in reader.fields if not k.startswith("GGUF.") and k not in skip}


def parse_table(stdout):
    """name -> (type, rel.err) from lowbit quantize's per-tensor table."""
    rows = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 8 and parts[3] == "->":
            rows[parts[0]] = (parts[4], float(parts[6]))
    return rows


def check_profile(tmp, preset, spec, src_path, src, src_kv, profile):
    out = os.path.join(tmp, f"{preset}-{profile}.gguf")
    r = run([LOWBIT, "quantize", "-m", src_path, "--profile", profile, "-o", out, "-t", "2"])
    if not T.check(f"{preset} {profile}: quantize exits 0", r.returncode == 0, r.stderr.strip()[-300:]):
        return None
    table = parse_table(r.stdout)
    reader = gguf.GGUFReader(out)
    wrong, too_far, table_off = [], [], []
    worst = 0.0
    for t in reader.tensors:
        shape = tuple(int(x) for x in reversed(t.shape.tolist()))
        want = expected_type(profile, t.name, shape, spec)
        if t.tensor_type != want:
            wrong.append(f"{t.name} {t.tensor_type.name} (expected {want.name})")
            continue
        w = src[t.name]
        got = gguf.quants.dequantize(t.data, t.tensor_type).reshape(w.shape)
        rel = float(np.linalg.norm(got.astype(np.float64) - w) / np.linalg.norm(w))
        worst = max(worst, rel / TOLERANCE[want]) if TOLERANCE[want] else worst
        if rel > TOLERANCE[want] * (1 + 1e-6) + (0 if TOLERANCE[want] else 1e-7):
            too_far.append(f"{t.name} {want.name} rel {rel:.4f} > {TOLERANCE[want]}")
        shown = table.get(t.name)
        if not shown or shown[0] != want.name or abs(shown[1] - rel) > 2e-3 * rel + 1e-6:
            table_off.append(f"{t.name}: table {shown}, measured {rel:.4e}")
    T.check(f"{preset} {profile}: every tensor has llama.cpp's type", not wrong and len(reader.tensors) == len(src),
            "; ".join(wrong[:4]) or f"{len(reader.tensors)} tensors")
    T.check(f"{preset} {profile}: dequantized within the type's tolerance", not too_far,
            "; ".join(too_far[:4]) or f"worst {worst:.2f} of tolerance")
    T.check(f"{preset} {profile}: table shows each type and relative error", not table_off,
            "; ".join(table_off[:3]))
    kv = kv_snapshot(reader)
    missing = [k for k in src_kv if kv.get(k) != src_kv[k]]
    T.check(f"{preset} {profile}: metadata copied", not missing, ", ".join(missing[:5]))
    ftype, qv = field_value(reader, "general.file_type"), field_value(reader, "general.quantization_version")
    T.check(f"{preset} {profile}: general.file_type {PROFILES[profile][1]}, quantization_version 2",
            ftype == PROFILES[profile][1] and qv == 2, "" if ftype == PROFILES[profile][1] and qv == 2
            else f"file_type {ftype}, quantization_version {qv}")
    r = run([LOWBIT, "run", "-m", out, "-p", "Once upon a time", "-n", "4", "--temp", "0", "--json"])
    ok = r.returncode == 0 and '"gen_tokens": 4' in r.stdout
    T.check(f"{preset} {profile}: lowbit run loads it", ok, "" if ok else r.stderr.strip()[-200:])
    # Quantizing at load time chooses the same types, so greedy decoding agrees with the file.
    live = run([LOWBIT, "run", "-m", src_path, "--profile", profile, "-p", "Once upon a time", "-n", "4",
                  "--temp", "0", "--json"])
    same = ok and live.returncode == 0 and \
        json.loads(live.stdout)["ids"] == json.loads(r.stdout)["ids"]
    T.check(f"{preset} {profile}: lowbit run --profile generates what the file does", same,
            "" if same else live.stderr.strip()[-200:])
    check_same_as_llama_quantize(tmp, preset, src_path, profile, out)
    return out


def check_same_as_llama_quantize(tmp, preset, src_path, profile, ours):
    exe = llama_tool("llama-quantize")
    if not exe:
        if preset == "llama-quant" and profile == "q4_k_m":
            T.skip("llama-quantize writes the same file", f"no llama-quantize in {LLAMA_BIN} (set LLAMA_BIN)")
        return
    theirs = os.path.join(tmp, f"{preset}-{profile}-llama.gguf")
    r = run([exe, src_path, theirs, profile.upper()])
    if not T.check(f"{preset} {profile}: llama-quantize runs", r.returncode == 0,
                   r.stderr.strip()[-300:] if r.returncode else ""):
        return
    a = {t.name: t for t in gguf.GGUFReader(theirs).tensors}
    b = {t.name: t for t in gguf.GGUFReader(ours).tensors}
    diff = [n for n in a if n not in b or a[n].tensor_type != b[n].tensor_type
            or np.asarray(a[n].data).tobytes() != np.asarray(b[n].data).tobytes()]
    T.check(f"{preset} {profile}: same types and bytes as llama-quantize", not diff and len(a) == len(b),
            ", ".join(diff[:4]))


def check_llama_cpp(path):
    exe = llama_tool("llama-simple", "llama-cli")
    if not exe:
        T.skip("llama.cpp loads our Q4_K_M file", "set LLAMA_BIN to a llama.cpp build/bin with llama-simple")
        return
    args = [exe, "-m", path, "-n", "4", "Once upon a time"] if exe.endswith("simple") else \
        [exe, "-m", path, "-n", "4", "-p", "Once upon a time", "--temp", "0", "-no-cnv"]
    r = run(args, timeout=300)
    T.check("llama.cpp loads and runs our Q4_K_M file", r.returncode == 0,
            f"{os.path.basename(exe)}: " + (r.stderr.strip()[-300:] if r.returncode else "exit 0"))


def main():
    vocab = MTM.llama_vocab(TOKENIZER)
    with tempfile.TemporaryDirectory() as tmp:
        for preset in ("llama-quant", "llama-gqa-tied"):
            spec = MTM.PRESETS[preset]
            weights = MTM.make_weights(spec, len(vocab[0]))
            src_path = os.path.join(tmp, f"{preset}-f32.gguf")
            MTM.write_gguf(src_path, spec, weights, vocab, "F32")
            src_kv = kv_snapshot(gguf.GGUFReader(src_path))
            src = {k: v.astype(np.float64) for k, v in weights.items()}
            for profile in PROFILES:
                out = check_profile(tmp, preset, spec, src_path, src, src_kv, profile)
                if preset == "llama-quant" and profile == "q4_k_m" and out:
                    check_llama_cpp(out)

        # A quantized input is refused unless --allow-requantize.
        q8 = os.path.join(tmp, "llama-quant-q8_0.gguf")
        src_path = os.path.join(tmp, "llama-quant-f32.gguf")
        out = os.path.join(tmp, "requant.gguf")
        r = run([LOWBIT, "quantize", "-m", q8, "--profile", "q4_0", "-o", out])
        T.check("quantized input refused", r.returncode == 1 and "--allow-requantize" in r.stderr
                and not os.path.exists(out), r.stderr.strip())
        r = run([LOWBIT, "quantize", "-m", q8, "--profile", "q4_0", "-o", out, "--allow-requantize", "-q"])
        T.check("--allow-requantize quantizes it", r.returncode == 0 and os.path.exists(out), r.stderr.strip())
        # Thread count does not change a byte.
        a, b = os.path.join(tmp, "t1.gguf"), os.path.join(tmp, "t4.gguf")
        run([LOWBIT, "quantize", "-m", src_path, "--profile", "q4_k_m", "-o", a, "-t", "1", "-q"])
        run([LOWBIT, "quantize", "-m", src_path, "--profile", "q4_k_m", "-o", b, "-t", "4", "-q"])
        T.check("-t 1 and -t 4 write identical files", open(a, "rb").read() == open(b, "rb").read())
        # A profile given as a file, with an override and pure.
        prof = os.path.join(tmp, "mine.yaml")
        with open(prof, "w") as f:
            f.write('name: mine\nmethod: q4_k\npure: true\noverrides:\n  - pattern: "blk.*.ffn_down.weight"\n'
                    '    type: q8_0\n')
        r = run([LOWBIT, "quantize", "-m", src_path, "--profile", prof, "-o", out, "-q"])
        types = {t.name: t.tensor_type for t in gguf.GGUFReader(out).tensors} if r.returncode == 0 else {}
        T.check("profile file: override and pure applied",
                types.get("blk.0.ffn_down.weight") == QT.Q8_0 and types.get("output.weight") == QT.Q4_K
                and types.get("blk.1.attn_v.weight") == QT.Q4_K, r.stderr.strip() if r.returncode else "")
        # lowbit's own NF4 / FP4 (type ids 128, 129): lowbit writes, describes and runs them; the gguf
        # package, like llama.cpp, refuses the file cleanly (128 is no GGMLQuantizationType).
        for own, tid in (("nf4", 128), ("fp4", 129)):
            path = os.path.join(tmp, f"llama-quant-{own}.gguf")
            r = run([LOWBIT, "quantize", "-m", src_path, "--profile", own, "-o", path, "-q"])
            info = run([LOWBIT, "info", path])
            gen = run([LOWBIT, "run", "-m", path, "-p", "Once upon a time", "-n", "4", "--temp", "0", "--json"])
            live = run([LOWBIT, "run", "-m", src_path, "--profile", own, "-p", "Once upon a time", "-n", "4",
                        "--temp", "0", "--json"])
            same = gen.returncode == 0 and live.returncode == 0 and \
                json.loads(gen.stdout)["ids"] == json.loads(live.stdout)["ids"]
            T.check(f"{own}: quantize, info (lowbit.type.{tid} and the type's line), run and run --profile agree",
                    r.returncode == 0 and info.returncode == 0 and f"lowbit.type.{tid}" in info.stdout
                    and f"{tid}  {own.upper()}" in info.stdout and same,
                    (r.stderr + info.stderr + gen.stderr + live.stderr).strip()[-300:])
            try:
                gguf.GGUFReader(path)
                refused = False
            except ValueError:
                refused = True
            T.check(f"{own}: the gguf package refuses the file (ValueError on type {tid})", refused)
        r = run([LOWBIT, "quantize", "-m", src_path, "--profile", "nonesuch", "-o", out])
        T.check("unknown profile: error names where it looked", r.returncode == 1 and "not found" in r.stderr,
                r.stderr.strip())
    return T.finish()


if __name__ == "__main__":
    sys.exit(main())
