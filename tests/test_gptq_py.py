"""GPTQ against a numpy port of the reference algorithm, and `lowbit quantize`
with calibration on stories260K.

1. engine/gptq.c (through tests/gptq_dump) against gptq_reference() below,
   written from the reference implementation's loop (IST-DASLab/gptq,
   gptq.py fasterquant: W1 block copies, Err1, the lazy W[:, i2:] update,
   group parameters fitted on W when a group starts, static groups,
   act-order by decreasing diag(H)) in float32 with a float64 inverse
   factor: the codes must agree (floating-point order may flip a code that
   sits on a rounding boundary; flips are counted) and so must the output
   error, on correlated synthetic inputs and on stories260K's real layer-0
   weights and inputs.
2. The CLI: a GPTQ Q4_0 file of stories260K written with --calib (text made
   here by `lowbit run`) has the same tensor types as `--profile q4_0`'s,
   loads in the gguf package, dequantizes there to exactly the values
   lowbit decodes (tests/types_dump), matches the table's relative errors,
   has GPTQ output errors below round-to-nearest's, runs in `lowbit run`,
   and — with llama.cpp ($LLAMA_BIN) — gives llama-perplexity the same
   perplexity as `lowbit perplexity`. --calib with an RTN profile changes
   nothing in the file and adds the output errors.
3. Errors: GPTQ profile without --calib, --calib-* without --calib, a grid
   no type holds, a text too short, loading with a GPTQ profile, a bad key.
"""

import os
import re
import subprocess
import sys
import tempfile

import lbtest as T

T.require("numpy", "gguf")
import numpy as np  # noqa: E402
import gguf  # noqa: E402

LOWBIT = T.tool("lowbit") or T.bail("lowbit not built")
DUMP = T.tool("gptq_dump") or T.bail("tests/gptq_dump not built")
TYPES = T.tool("types_dump") or T.bail("tests/types_dump not built")
MODEL = T.shared("stories260K.gguf")
LLAMA_BIN = os.environ.get("LLAMA_BIN") or "/tmp/lowbit-bench/llama.cpp-build/bin"


# ---------------------------------------------------------------------------
# The reference algorithm in numpy


def fp16(x):
    return np.float32(np.float16(np.float32(x)))


def find_params(x, bits, sym, signed_max):
    """One group (rows × n): scale and zero per row, as quant.py (fp16 scales)."""
    maxq = 2 ** bits - 1
    if sym and signed_max:
        idx = np.argmax(np.abs(x), axis=1)
        m = x[np.arange(x.shape[0]), idx]
        s = fp16(m / np.float32(-(2 ** (bits - 1))))
        s = np.where(m == 0, np.float32(1), s).astype(np.float32)
        return s, np.full_like(s, 2 ** (bits - 1))
    lo = np.minimum(x.min(axis=1), 0).astype(np.float32)
    hi = np.maximum(x.max(axis=1), 0).astype(np.float32)
    if sym:
        hi = np.maximum(-lo, hi)
        lo = -hi
    both0 = (lo == 0) & (hi == 0)
    lo[both0], hi[both0] = -1, 1
    s = fp16((hi - lo) / np.float32(maxq))
    z = np.full_like(s, (maxq + 1) // 2) if sym else np.clip(np.rint(-lo / s), 0, maxq).astype(np.float32)
    return s, z


def quantize(x, s, z, maxq):
    q = np.clip(np.rint(x / s) + z, 0, maxq)
    return q, (s * (q - z)).astype(np.float32)


def gptq_reference(W, H, bits, group, sym, signed_max, act_order, static_groups, blocksize=128, percdamp=0.01):
    W = W.astype(np.float32).copy()
    H = H.astype(np.float64).copy()
    rows, cols = W.shape
    maxq = 2 ** bits - 1
    gs = group if group > 0 else cols
    ng = (cols + gs - 1) // gs
    scale = np.zeros((rows, ng), np.float32)
    zero = np.zeros((rows, ng), np.float32)
    if group == 0:
        scale[:, 0], zero[:, 0] = find_params(W, bits, sym, signed_max)
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    if static_groups:
        for k in range(ng):
            scale[:, k], zero[:, k] = find_params(W[:, k * gs:(k + 1) * gs], bits, sym, signed_max)
    perm = np.argsort(-np.diag(H), kind="stable") if act_order else np.arange(cols)
    W = W[:, perm]
    H = H[perm][:, perm]
    H[np.diag_indices(cols)] += percdamp * np.mean(np.diag(H))
    L = np.linalg.cholesky(H)
    Linv = np.linalg.inv(L)
    U = np.linalg.cholesky(Linv.T @ Linv).T.astype(np.float32)  # upper, H^-1 = U^T U
    Q = np.zeros((rows, cols), np.int64)
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        W1 = W[:, i1:i2].copy()
        Err1 = np.zeros_like(W1)
        for i in range(i2 - i1):
            pos = i1 + i
            col = perm[pos]
            if group > 0:
                if static_groups:
                    k = col // gs
                else:
                    k = pos // gs
                    if pos % gs == 0:
                        scale[:, k], zero[:, k] = find_params(W[:, pos:pos + gs], bits, sym, signed_max)
            else:
                k = 0
            w = W1[:, i]
            d = U[pos, pos]
            q, deq = quantize(w, scale[:, k], zero[:, k], maxq)
            Q[:, col] = q
            err = (w - deq) / d
            W1[:, i:] -= np.outer(err, U[pos, pos:i2]).astype(np.float32)
            Err1[:, i] = err
        W[:, i2:] -= Err1 @ U[i1:i2, i2:]
    return Q, scale, zero


def values(Q, scale, zero, group):
    gs = group if group > 0 else Q.shape[1]
    k = np.arange(Q.shape[1]) // gs
    return scale[:, k] * (Q - zero[:, k])


def out_error(W, Wq, H):
    D = (W - Wq).astype(np.float64)
    return float(np.sqrt(np.einsum("ij,jk,ik->", D, H, D) / np.einsum("ij,jk,ik->", W.astype(np.float64), H, W)))


def run_dump(tmp, W, H, bits, group, sym, signed_max, act, static):
    rows, cols = W.shape
    W.astype(np.float32).tofile(os.path.join(tmp, "w.f32"))
    H.astype(np.float64).tofile(os.path.join(tmp, "h.f64"))
    out = os.path.join(tmp, "out")
    r = T.run([DUMP, os.path.join(tmp, "w.f32"), os.path.join(tmp, "h.f64"), rows, cols, bits, group, int(sym),
               "signed_max" if signed_max else "minmax", int(act), int(static), 128, 0.01, out])
    if r.returncode != 0:
        return None
    ng = (cols + (group or cols) - 1) // (group or cols)
    Q = np.fromfile(out + ".q", np.uint8).reshape(rows, cols).astype(np.int64)
    s = np.fromfile(out + ".scale", np.float32).reshape(rows, ng)
    z = np.fromfile(out + ".zero", np.float32).reshape(rows, ng)
    return Q, s, z


VARIANTS = [  # bits, group, sym, signed_max, act_order, static_groups
    (4, 32, True, True, True, True),
    (4, 32, True, False, False, False),
    (4, 32, False, False, False, False),
    (3, 128, False, False, True, True),
    (2, 64, False, False, False, True),
    (8, 64, True, False, False, False),
    (4, 0, False, False, True, False),
]


def compare_with_reference(tmp, label, W, H, max_flips):
    for bits, group, sym, sm, act, static in VARIANTS:
        name = f"{label} {bits}-bit g{group or 'channel'} {'sym' if sym else 'asym'}" \
               f"{' signed-max' if sm else ''}{' act-order' if act else ''}{' static' if static else ''}"
        got = run_dump(tmp, W, H, bits, group, sym, sm, act, static)
        if not T.check(f"{name}: gptq_dump runs", got is not None):
            continue
        Q, s, z = got
        Qr, sr, zr = gptq_reference(W, H, bits, group, sym, sm, act, static)
        flips = float(np.mean(Q != Qr))
        e, er = out_error(W, values(Q, s, z, group), H), out_error(W, values(Qr, sr, zr, group), H)
        T.check(f"{name}: codes as the reference's (flipped {flips:.2%}), output error {e:.5f} vs {er:.5f}",
                flips <= max_flips and abs(e - er) <= 0.01 * er)


# ---------------------------------------------------------------------------
# The CLI


def run(cmd, timeout=600):
    try:
        return T.run(cmd, timeout=timeout)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(cmd, 124, "", f"timed out after {timeout} s")


def parse_table(stdout):
    """tensor -> (type, rel.err, out.err or None, rtn.out or None, rule)"""
    rows = {}
    for line in stdout.splitlines():
        f = line.split()
        if len(f) == 10 and f[3] == "->":
            num = lambda v: None if v == "-" else float(v)  # noqa: E731
            rows[f[0]] = (f[4], float(f[6]), num(f[7]), num(f[8]), f[9])
    return rows


def make_text(tmp, seeds, n):
    """Calibration text, generated here by the model itself."""
    parts = []
    for s in seeds:
        r = run([LOWBIT, "run", "-m", MODEL, "-p", "Once upon a time", "-n", n, "--temp", "1", "--seed", s])
        parts.append("Once upon a time" + r.stdout)
    path = os.path.join(tmp, f"text-{seeds[0]}.txt")
    with open(path, "w") as f:
        f.write("\n".join(parts))
    return path


def decode_with_lowbit(tmp, data, type_name):
    raw, out = os.path.join(tmp, "t.bin"), os.path.join(tmp, "t.f32")
    np.asarray(data).tofile(raw)
    r = T.run([TYPES, "dequantize", type_name, raw, out])
    return np.fromfile(out, np.float32) if r.returncode == 0 else None


def check_cli(tmp):
    calib = make_text(tmp, range(1, 9), 250)
    held_out = make_text(tmp, range(101, 113), 250)
    g32 = os.path.join(tmp, "gptq.gguf")
    r = run([LOWBIT, "quantize", "-m", MODEL, "--profile", "gptq-4bit-g32", "--calib", calib, "--calib-ctx", "64",
             "--calib-samples", "24", "-t", "2", "-o", g32])
    if not T.check("quantize --profile gptq-4bit-g32 --calib exits 0", r.returncode == 0, r.stderr[-300:]):
        return
    table = parse_table(r.stdout)
    m = re.search(r"calibration: (\d+) samples of (\d+) tokens", r.stdout)
    T.check("the table says how much calibration text was used", m and m.group(1) == "24" and m.group(2) == "64",
            m.group(0) if m else r.stdout[-200:])
    gptq_rows = {k: v for k, v in table.items() if v[4] == "gptq"}
    T.check("every 64-column layer matrix is GPTQ (30 of them)", len(gptq_rows) == 30, str(len(gptq_rows)))
    ratios = [v[2] / v[3] for v in gptq_rows.values()]
    T.check(f"GPTQ's output error below RTN's on every matrix (mean ratio {np.mean(ratios):.3f}, worst "
            f"{max(ratios):.3f})", max(ratios) < 1.0)

    rtn = os.path.join(tmp, "q4_0.gguf")
    r0 = run([LOWBIT, "quantize", "-m", MODEL, "--profile", "q4_0", "-t", "2", "-o", rtn])
    rc = run([LOWBIT, "quantize", "-m", MODEL, "--profile", "q4_0", "--calib", calib, "--calib-ctx", "64",
              "--calib-samples", "24", "-t", "2", "-o", os.path.join(tmp, "q4_0-calib.gguf")])
    same = r0.returncode == 0 and rc.returncode == 0 and \
        open(rtn, "rb").read() == open(os.path.join(tmp, "q4_0-calib.gguf"), "rb").read()
    T.check("--calib with an RTN profile writes the same file", same, rc.stderr[-200:])
    ct = parse_table(rc.stdout)
    T.check("... and adds each layer matrix's output error (no RTN column)",
            all(v[2] is not None and v[3] is None for k, v in ct.items() if k.startswith("blk.") and "norm" not in k))

    src = {t.name: np.array(t.data) for t in gguf.GGUFReader(MODEL).tensors}
    ref = {t.name: t for t in gguf.GGUFReader(rtn).tensors}
    reader = gguf.GGUFReader(g32)
    types_ok, same_values, table_ok, moved = [], [], [], 0
    for t in reader.tensors:
        if t.tensor_type != ref[t.name].tensor_type:
            types_ok.append(f"{t.name} {t.tensor_type.name} vs {ref[t.name].tensor_type.name}")
        ours = gguf.quants.dequantize(t.data, t.tensor_type).reshape(-1)
        lb = decode_with_lowbit(tmp, t.data, t.tensor_type.name)
        if lb is None or not np.array_equal(ours, lb):
            same_values.append(t.name)
        w = src[t.name].reshape(-1).astype(np.float64)
        rel = float(np.linalg.norm(ours - w) / np.linalg.norm(w)) if np.any(w) else 0.0
        row = table.get(t.name)
        if row is None or abs(row[1] - rel) > 2e-3 * rel + 1e-6:
            table_ok.append(f"{t.name}: table {row}, measured {rel:.4e}")
        if t.name in gptq_rows:
            moved += int(np.any(np.array(t.data) != np.array(ref[t.name].data)))
    T.check("the GPTQ file has the types of --profile q4_0's", not types_ok, "; ".join(types_ok[:3]))
    T.check("gguf dequantizes every tensor to exactly lowbit's values", not same_values, ", ".join(same_values[:4]))
    T.check("the table's relative errors are the file's", not table_ok, "; ".join(table_ok[:3]))
    T.check(f"GPTQ changed the codes of every GPTQ matrix ({moved} of {len(gptq_rows)})", moved == len(gptq_rows))
    meta = {f.name: f for f in reader.fields.values()}
    ft = int(meta["general.file_type"].parts[-1][0])
    T.check("general.file_type is LLAMA_FTYPE_MOSTLY_Q4_0 (2)", ft == 2, str(ft))

    r = run([LOWBIT, "run", "-m", g32, "-p", "Once upon a time", "-n", "8", "--temp", "0", "--json"])
    T.check("lowbit run loads and runs the GPTQ file", r.returncode == 0 and '"gen_tokens": 8' in r.stdout,
            r.stderr[-200:])

    # Same perplexity from llama.cpp and lowbit on the file, on held-out text.
    ppl = run([LOWBIT, "perplexity", "-m", g32, "-f", held_out, "--ctx", "64", "--json", "-t", "2"])
    ours = float(re.search(r'"ppl": ([0-9.]+)', ppl.stdout).group(1)) if ppl.returncode == 0 else None
    T.check("lowbit perplexity runs the GPTQ file", ours is not None, ppl.stderr[-200:])
    tool = os.path.join(LLAMA_BIN, "llama-perplexity")
    if not os.access(tool, os.X_OK):
        T.skip("llama-perplexity gives the same perplexity", f"no {tool} (set LLAMA_BIN)")
    elif ours is not None:
        env = dict(os.environ, LD_LIBRARY_PATH=LLAMA_BIN)
        # Its log is written by a thread of its own; through a pipe the last
        # lines can be lost at exit, so read its log file as well.
        log = os.path.join(tmp, "llama.log")
        lr = subprocess.run([tool, "-m", g32, "-f", held_out, "-c", "64", "-b", "64", "-t", "2", "--log-file", log],
                            env=env, capture_output=True, text=True, timeout=300)
        logged = open(log).read() if os.path.exists(log) else ""
        m = re.search(r"Final estimate: PPL = ([0-9.]+)", lr.stdout + lr.stderr + logged)
        if not m:
            T.skip("llama-perplexity gives the same perplexity",
                   f"it printed no estimate (exit {lr.returncode}): {(lr.stdout + lr.stderr)[-300:]}")
        else:
            theirs = float(m.group(1))
            # F32 files agree to 1e-4; Q4_0 files differ by ~1e-3 for RTN files too (the dot-product kernels).
            T.check(f"llama-perplexity loads the GPTQ Q4_0 file: PPL {theirs} vs lowbit's {ours}",
                    abs(theirs - ours) <= 2e-3 * theirs)

    # --- errors ---
    r = run([LOWBIT, "quantize", "-m", MODEL, "--profile", "gptq-4bit-g32", "-o", os.path.join(tmp, "x.gguf")])
    T.check("GPTQ profile without --calib: exit 2, says to pass --calib TEXTFILE",
            r.returncode == 2 and "needs calibration text: pass --calib TEXTFILE" in r.stderr, r.stderr)
    r = run([LOWBIT, "quantize", "-m", MODEL, "--profile", "q4_0", "--calib-samples", "8", "-o",
             os.path.join(tmp, "x.gguf")])
    T.check("--calib-samples without --calib: exit 2", r.returncode == 2 and
            "--calib-samples needs --calib TEXTFILE" in r.stderr, r.stderr)
    short = os.path.join(tmp, "short.txt")
    with open(short, "w") as f:
        f.write("Once upon a time there was a cat.")
    r = run([LOWBIT, "quantize", "-m", MODEL, "--profile", "gptq-4bit-g32", "--calib", short, "-o",
             os.path.join(tmp, "x.gguf")])
    T.check("a calibration text shorter than one chunk: refused, naming the file and the counts",
            r.returncode == 1 and "short.txt" in r.stderr and "fewer than one calibration chunk of 512" in r.stderr,
            r.stderr)
    T.check("... and nothing written", not os.path.exists(os.path.join(tmp, "x.gguf")))
    r = run([LOWBIT, "quantize", "-m", MODEL, "--profile", "gptq-4bit-g128", "--calib", calib, "-o",
             os.path.join(tmp, "x.gguf")])
    if r.returncode != 0:
        T.check("gptq-4bit-g128 with no type for its grid: the message names the grid",
                "no tensor type holds its gptq grid (4-bit, groups of 128, asymmetric)" in r.stderr, r.stderr)
    else:
        T.check("gptq-4bit-g128 writes a file now that a type holds its grid", os.path.exists(
            os.path.join(tmp, "x.gguf")))
    r = run([LOWBIT, "run", "-m", MODEL, "--profile", "gptq-4bit-g32", "-p", "Hi", "-n", "2"])
    T.check("lowbit run --profile gptq-4bit-g32: refused, saying what to do",
            r.returncode != 0 and "write a file with lowbit quantize --calib TEXTFILE" in r.stderr, r.stderr)
    bad = os.path.join(tmp, "bad.yaml")
    with open(bad, "w") as f:
        f.write("name: bad\nmethod: gptq\ngptq:\n  bits: 4\n  group_size: 32\n  damp: 0.1\n")
    r = run([LOWBIT, "quantize", "-m", MODEL, "--profile", bad, "--calib", calib, "-o", os.path.join(tmp, "x.gguf")])
    T.check("a bad key in a GPTQ profile: file:line:column", r.returncode == 1 and
            f"{bad}:6:3: unknown key 'damp'" in r.stderr, r.stderr)


def main():
    with tempfile.TemporaryDirectory(prefix="lowbit-gptq-") as tmp:
        rng = np.random.default_rng(0)
        # Correlated inputs: 4 shared factors plus noise, channel scales 1/8..8.
        n, cols, rows = 2048, 256, 96
        M = rng.standard_normal((4, cols))
        sigma = np.exp(rng.uniform(-1, 1, cols) * np.log(8))
        X = ((rng.standard_normal((n, 4)) @ M + 0.5 * rng.standard_normal((n, cols))) * sigma).astype(np.float32)
        X[:, 17] = 0  # a dead input
        H = 2.0 / n * X.astype(np.float64).T @ X.astype(np.float64)
        W = (0.02 * rng.standard_normal((rows, cols))).astype(np.float32)
        compare_with_reference(tmp, "synthetic", W, H, max_flips=0.002)

        # stories260K layer 0: its attention and FFN weights on the normed
        # embeddings of random tokens.
        t = {x.name: np.array(x.data) for x in gguf.GGUFReader(MODEL).tensors}
        emb = t["token_embd.weight"].astype(np.float32)
        x = emb[rng.integers(0, emb.shape[0], 4096)]
        x = x / np.sqrt(np.mean(x * x, axis=1, keepdims=True) + 1e-5) * t["blk.0.attn_norm.weight"]
        H0 = 2.0 / 32 * x.astype(np.float64).T @ x.astype(np.float64)
        for name in ("blk.0.attn_q.weight", "blk.0.attn_v.weight"):
            compare_with_reference(tmp, name, t[name].astype(np.float32), H0, max_flips=0.002)

        check_cli(tmp)
    sys.exit(T.finish())


if __name__ == "__main__":
    main()
