#!/usr/bin/env python3
"""spec_bench.py — speculative decoding against plain decoding, lowbit and llama.cpp.

    bench/spec_bench.py --pair DIR [--configs NAME,...] [-n 128] [-r 3] [-t 2]
                        [--llama-bin DIR] [--prompts N]

DIR holds the pair bench/make_spec_pair.py writes (spec-target-f16.gguf,
spec-draft-f16.gguf). Every configuration below runs on every prompt, R rounds,
round-robin (the machine is shared, so neighbours in time are compared):

  plain          lowbit run, no draft
  self-q4_0      lowbit run --draft-profile q4_0      (the target's own weights, 4-bit)
  self-q2_k      lowbit run --draft-profile q2_k
  self-q8_0      lowbit run --draft-profile q8_0
  self-q4_0-k3   lowbit run --draft-profile q4_0 --draft-max 3 --draft-fixed
  draft          lowbit run --draft spec-draft-f16.gguf
  llama-plain    llama-bench -p 0 -n N on the target
  llama-draft    llama-speculative with spec-draft-f16.gguf
  llama-q4_0     llama-speculative with the target quantized by llama-quantize (q4_0)
  llama-q2_k     llama-speculative with the target quantized by llama-quantize (q2_k)

Each lowbit speculative run also times plain decoding in the same process right
after (its JSON's plain_decode_tps); the speed-up printed is the median over runs
of decode_tps / plain_decode_tps. Greedy (--temp 0), so acceptance is the same in
every round; the speculative runs' token ids are checked against the plain ones.
Prints a Markdown table for BENCHMARKS.md.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

PROMPTS = [
    "Once upon a time, there was a little girl named Lily.",
    "Tom and his dog went to the park. They",
    "One day, a big bird flew over the house and",
    "The sun was hot and the children wanted to",
]

LOWBIT = {
    "plain": [],
    "self-q4_0": ["--draft-profile", "q4_0"],
    "self-q2_k": ["--draft-profile", "q2_k"],
    "self-q8_0": ["--draft-profile", "q8_0"],
    "self-q4_0-k3": ["--draft-profile", "q4_0", "--draft-max", "3", "--draft-fixed"],
    "draft": ["--draft", "{draft}"],
}
LLAMA = ("llama-plain", "llama-draft", "llama-q4_0", "llama-q2_k")


def lowbit_run(lowbit, target, pair, extra, prompt, n, threads):
    cmd = [lowbit, "run", "-m", target, "-p", prompt, "-n", str(n), "--temp", "0", "-t", str(threads), "--json",
           "--ignore-eos"] + [a.format(draft=os.path.join(pair, "spec-draft-f16.gguf")) for a in extra]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def llama_quantized(bins, target, qtype):
    out = target.replace("-f16.gguf", f"-{qtype}.gguf")
    if not os.path.exists(out):
        subprocess.run([os.path.join(bins, "llama-quantize"), target, out, qtype.upper()], check=True,
                       capture_output=True)
    return out


def llama_speculative(bins, target, draft, prompt, n, threads, kmax):
    cmd = [os.path.join(bins, "llama-speculative"), "-m", target, "-md", draft, "-p", prompt, "-n", str(n),
           "--temp", "0", "-t", str(threads), "-td", str(threads), "-c", "1024", "--spec-draft-n-max", str(kmax),
           "--ignore-eos"]
    err = subprocess.run(cmd, check=True, capture_output=True, text=True).stderr
    tps = float(re.search(r"decoded\s+\d+ tokens in\s+[\d.]+ seconds, speed:\s+([\d.]+) t/s", err).group(1))
    drafted = int(re.search(r"n_drafted = (\d+)", err).group(1))
    accepted = int(re.search(r"n_accept\s+= (\d+)", err).group(1))
    return {"tps": tps, "drafted": drafted, "accepted": accepted}


def llama_plain(bins, target, n, threads):
    cmd = [os.path.join(bins, "llama-bench"), "-m", target, "-p", "0", "-n", str(n), "-t", str(threads), "-r", "1",
           "-o", "json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return {"tps": json.loads(out)[0]["avg_ts"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pair", required=True)
    ap.add_argument("--configs", default=",".join(list(LOWBIT) + list(LLAMA)))
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("-r", type=int, default=3)
    ap.add_argument("-t", type=int, default=2)
    ap.add_argument("--prompts", type=int, default=2)
    ap.add_argument("--draft-max", type=int, default=8, help="llama-speculative's --spec-draft-n-max")
    ap.add_argument("--lowbit", default=os.path.join(ROOT, "lowbit"))
    ap.add_argument("--llama-bin", default="/tmp/lowbit-bench/llama.cpp-build/bin")
    a = ap.parse_args()
    target = os.path.join(a.pair, "spec-target-f16.gguf")
    configs = a.configs.split(",")
    prompts = PROMPTS[:a.prompts]
    results = {c: [] for c in configs}
    plain_ids = {}
    for rnd in range(a.r):
        for pi, prompt in enumerate(prompts):
            for c in configs:
                print(f"round {rnd + 1}/{a.r}, prompt {pi}, {c}", file=sys.stderr, flush=True)
                if c in LOWBIT:
                    j = lowbit_run(a.lowbit, target, a.pair, LOWBIT[c], prompt, a.n, a.t)
                    r = {"tps": j["decode_tps"], "prompt": pi}
                    if c == "plain":
                        plain_ids[pi] = j["ids"]
                    else:
                        s = j["speculative"]
                        r.update(drafted=s["drafted"], accepted=s["accepted"], steps=s["steps"],
                                 plain=s["plain_decode_tps"], draft_s=s["draft_s"], target_s=s["target_s"])
                        if pi in plain_ids and j["ids"] != plain_ids[pi]:
                            sys.exit(f"{c}, prompt {pi}: greedy ids differ from plain decoding")
                elif c == "llama-plain":
                    r = llama_plain(a.llama_bin, target, a.n, a.t)
                else:
                    draft = (os.path.join(a.pair, "spec-draft-f16.gguf") if c == "llama-draft"
                             else llama_quantized(a.llama_bin, target, c.split("-")[1]))
                    r = llama_speculative(a.llama_bin, target, draft, prompt, a.n, a.t, a.draft_max)
                r["prompt"] = pi
                results[c].append(r)
                print("  " + json.dumps(r), file=sys.stderr, flush=True)

    print(f"\nspeculative decoding, {os.path.basename(a.pair)}, {a.n} tokens greedy, {a.t} threads, "
          f"{len(prompts)} prompts x {a.r} rounds (median)\n")
    print("| run | acceptance | drafted / step | accepted / step | tok/s | plain tok/s (same process) | speed-up |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for c in configs:
        rs = results[c]
        tps = statistics.median(r["tps"] for r in rs)
        acc = drafted = per = plain = speed = ""
        if "drafted" in rs[0]:
            d = sum(r["drafted"] for r in rs)
            acc = f"{100.0 * sum(r['accepted'] for r in rs) / d:.1f} %" if d else "-"
        if "steps" in rs[0]:
            steps = sum(r["steps"] for r in rs)
            drafted = f"{sum(r['drafted'] for r in rs) / steps:.2f}"
            per = f"{sum(r['accepted'] for r in rs) / steps:.2f}"
            plain = f"{statistics.median(r['plain'] for r in rs):.2f}"
            speed = f"{statistics.median(r['tps'] / r['plain'] for r in rs):.2f}x"
        print(f"| {c} | {acc} | {drafted} | {per} | {tps:.2f} | {plain} | {speed} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
