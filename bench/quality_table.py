#!/usr/bin/env python3
"""quality_table.py — one quality table for every shipped profile, on one model, one text, one tool.

    bench/quality_table.py [--model M.gguf] [--work DIR] [--ctx N] [--chunks N]
                           [--calib-samples N] [--calib-ctx N] [--profiles P ...]
    (run from the build directory; LOWBIT overrides ./lowbit)

For every profiles/*.yaml, plus a round-to-nearest "twin" for each calibrated profile (the
same grid, the same overrides, written by this script into WORK), the model is quantized with
`lowbit quantize -t 1` (--calib for the calibrated ones), scored with
`lowbit perplexity --kld-base -t 1` against the source model's saved log-probabilities, and
timed with `lowbit bench -p 0 -n 64 -r 3 -t 1`. One Markdown row per profile: tensor types
(from quantize's per-tensor table; † = the type was a fallback for rows the profile's type
cannot hold), bits per weight of the whole file, size, PPL ± stderr, mean and p99 KL
divergence, top-1 agreement, quantize time, decode tok/s. After the table, each calibrated
profile against its twin: mean KLD change, and whether both wrote the same tensor types.

Text: stories260K writes it (temperature 1, no truncation, prompt "Once upon a time",
400 tokens a story), as bench/calibrated.sh does: seeds 1-120 are the calibration text,
seeds 5001-5040 the evaluation text; the two never overlap. Kept in WORK and reused.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

SHARED = os.environ.get("SHARED_MODELS", "../shared/models")
LOWBIT = os.environ.get("LOWBIT", "./lowbit")
SRC = os.environ.get("top_srcdir", ".")

# Round-to-nearest at each calibrated profile's grid and overrides (the baseline it must beat).
HEAD_Q8 = """overrides:
  - pattern: output.weight
    type: q8_0
  - pattern: token_embd.weight
    type: q8_0
"""
TWINS = {
    "awq-4bit-g32": ("rtn-4bit-g32-zp", "method: rtn\nbits: 4\ngranularity: group\ngroup_size: 32\n"
                     "symmetric: false\n" + HEAD_Q8),
    "awq-4bit-g128": ("rtn-4bit-g128-zp-q8head", "method: rtn\nbits: 4\ngranularity: group\n"
                      "group_size: 128\nsymmetric: false\n" + HEAD_Q8),
    "gptq-4bit-g32": ("q4_0", None),
    # Rows that do not fit 128 take the same grid's smaller group in both (lowbit-profile(5),
    # fallback), and GPTQ/AWQ calibrate them there: the twins need no fallback line.
    "gptq-4bit-g128": ("rtn-4bit-g128-zp", "method: rtn\nbits: 4\ngranularity: group\ngroup_size: 128\n"
                       "symmetric: false\n"),
    "gptq-3bit-g128": ("rtn-3bit-g128-zp", "method: rtn\nbits: 3\ngranularity: group\ngroup_size: 128\n"
                       "symmetric: false\n"),
    "llm-int8": ("int8-rowwise", "method: llm-int8\noutlier_threshold: 1e30\noverrides:\n"
                 "  - pattern: output.weight\n    type: f16\n  - pattern: token_embd.weight\n"
                 "    type: f16\nfallback: f16\n"),
    "q4_k_m-imatrix": ("q4_k_m", None),
}


def sh(args, **kw):
    r = subprocess.run(args, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {r.returncode}: {r.stderr.strip()[-400:]}")
    return r.stdout + r.stderr


def gen_text(path, seeds, gen_model):
    if os.path.exists(path) and os.path.getsize(path) > 0:
        return
    with open(path + ".tmp", "w") as f:
        for s in seeds:
            out = subprocess.run([LOWBIT, "run", "-m", gen_model, "-p", "Once upon a time", "-n", "400",
                                  "--temp", "1.0", "--top-k", "0", "--top-p", "1", "--min-p", "0",
                                  "--seed", str(s), "-t", "1"], capture_output=True, text=True).stdout
            f.write("Once upon a time" + out + "\n")
    os.replace(path + ".tmp", path)


def is_calibrated(yaml_text):
    m = re.search(r"^method:\s*(\S+)", yaml_text, re.M)
    method = m.group(1) if m else ""
    return method in ("gptq", "awq", "llm-int8") or re.search(r"^importance:\s*calibration", yaml_text, re.M) \
        is not None or "outlier_threshold" in yaml_text


def types_summary(table):
    """'Q4_1×28†, F16×4†, Q8_0×1' from quantize's per-tensor table (2D tensors only)."""
    counts, mapping = {}, {}
    for line in table.splitlines():
        f = line.split()
        if len(f) < 8 or f[3] != "->" or "x" not in f[1]:
            continue
        # The rule is the last field, or "fallback (gptq)" where GPTQ made a fallback.
        name, ty, fallback = f[0], f[4], "fallback" in f[-2:]
        mapping[name] = ty
        key = ty + ("†" if fallback else "")
        counts[key] = counts.get(key, 0) + 1
    s = ", ".join(f"{k}×{v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
    return s, mapping


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=f"{SHARED}/stories260K.gguf")
    ap.add_argument("--work", default="/tmp/lowbit-quality-table")
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--chunks", type=int, default=0, help="score at most N chunks (0: all)")
    ap.add_argument("--calib-samples", type=int, default=32)
    ap.add_argument("--calib-ctx", type=int, default=256)
    ap.add_argument("--profiles", nargs="*", help="profile names (default: every profiles/*.yaml)")
    a = ap.parse_args()
    t_start = time.time()
    os.makedirs(a.work, exist_ok=True)
    tag = os.path.splitext(os.path.basename(a.model))[0]
    work = os.path.join(a.work, tag)
    os.makedirs(work, exist_ok=True)

    gen_model = f"{SHARED}/stories260K.gguf"
    calib, evalt = os.path.join(a.work, "calib.txt"), os.path.join(a.work, "eval.txt")
    gen_text(calib, range(1, 121), gen_model)
    gen_text(evalt, range(5001, 5041), gen_model)

    pdir = os.path.join(SRC, "profiles")
    names = a.profiles or sorted(os.path.splitext(p)[0] for p in os.listdir(pdir) if p.endswith(".yaml"))
    rows = []  # (label, profile path, calibrated)
    for n in names:
        path = os.path.join(pdir, n + ".yaml")
        text = open(path).read()
        rows.append((n, path, is_calibrated(text)))
        if n in TWINS:
            tn, body = TWINS[n]
            if body is not None:
                tp = os.path.join(work, tn + ".yaml")
                with open(tp, "w") as f:
                    f.write(f"name: {tn}\n{body}")
                rows.append((tn, tp, is_calibrated(body)))
            elif tn not in names:
                rows.append((tn, os.path.join(pdir, tn + ".yaml"), False))

    chunks = ["--chunks", str(a.chunks)] if a.chunks else []
    base = json.loads(sh([LOWBIT, "perplexity", "-m", a.model, "-f", evalt, "--ctx", str(a.ctx), *chunks,
                          "--save-logits", os.path.join(work, "base.lp"), "--json", "-t", "1"]))
    src_kib = os.path.getsize(a.model) // 1024
    print(f"model: {os.path.basename(a.model)} ({src_kib} KiB), evaluation: {os.path.basename(evalt)}, "
          f"ctx {a.ctx}, {base['tokens']} scored tokens; source PPL {base['ppl']:.4f} ± {base['ppl_stderr']:.4f}; "
          f"calibration: {a.calib_samples} × {a.calib_ctx} tokens of {os.path.basename(calib)}")
    print()
    print("| profile | method | tensor types (matrices; † fallback) | bpw | KiB | PPL | mean KLD | p99 KLD "
          "| same top-1 | quantize | tg64 tok/s |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    results = {}
    for label, path, calibrated in rows:
        out = os.path.join(work, label + ".gguf")
        cal = ["--calib", calib, "--calib-samples", str(a.calib_samples), "--calib-ctx", str(a.calib_ctx)] \
            if calibrated else []
        method = re.search(r"^method:\s*(\S+)", open(path).read(), re.M).group(1)
        try:
            q = sh([LOWBIT, "quantize", "-m", a.model, "--profile", path, "-o", out, "-t", "1", *cal])
        except RuntimeError as e:
            print(f"| {label} | {method} | – | – | – | – | – | – | – | not written: {str(e)[-160:]} | – |")
            continue
        total = [l for l in q.splitlines() if "bits per weight" in l][-1]
        bpw = float(re.search(r"([0-9.]+) bits per weight", total).group(1))
        secs = float(re.search(r"([0-9.]+) s$", total).group(1))
        types, mapping = types_summary(q)
        j = json.loads(sh([LOWBIT, "perplexity", "-m", out, "-f", evalt, "--ctx", str(a.ctx), *chunks,
                           "--kld-base", os.path.join(work, "base.lp"), "--json", "-t", "1"]))
        b = sh([LOWBIT, "bench", "-m", out, "-p", "0", "-n", "64", "-r", "3", "-t", "1"])
        tg = re.search(r"\| tg64 \| ([0-9.]+) ± ([0-9.]+)", b)
        results[label] = (j, mapping)
        print(f"| {label} | {method} | {types} | {bpw:.2f} | {os.path.getsize(out) // 1024} | "
              f"{j['ppl']:.4f} ± {j['ppl_stderr']:.4f} | {j['kld_mean']:.6f} | {j['kld_p99']:.5f} | "
              f"{100 * j['top1_agreement']:.1f} % | {secs:.2f} s | {float(tg.group(1)):.0f} ± {float(tg.group(2)):.0f} |",
              flush=True)
        os.remove(out)

    print()
    print("Calibrated profile against round-to-nearest at its grid (mean KLD, change):")
    print()
    for n, (tn, _) in TWINS.items():
        if n in results and tn in results:
            (jc, mc), (jr, mr) = results[n], results[tn]
            diff = [f"{k} {mr.get(k)}→{mc.get(k)}" for k in mc if mc.get(k) != mr.get(k)]
            same = "same tensor types" if not diff else f"types differ in {len(diff)} tensors, e.g. {diff[0]}"
            print(f"- {n} {jc['kld_mean']:.6f} vs {tn} {jr['kld_mean']:.6f}: "
                  f"{100 * (jc['kld_mean'] / jr['kld_mean'] - 1):+.1f} % ({same})")
    print()
    print(f"wall time {time.time() - t_start:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
