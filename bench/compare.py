#!/usr/bin/env python3
"""compare.py — lowbit against llama.cpp on the same files, threads and machine.

    bench/compare.py --llama-src DIR [--shape tinyllama] [--types F16,Q8_0,Q4_0,Q4_K_M]
                     [--threads 1,2] [-p 512] [-n 128] [-r 3] [--rounds 2] [--work /tmp/lowbit-bench]
                     [--lowbit-base OLD_LOWBIT] [--llama-bin DIR] [-d DEPTH]

1. Builds llama.cpp's llama-bench and llama-quantize from DIR (a source tree the user
   points to, e.g. the vendor/llama.cpp folder of the llama-cpp-python sdist) under
   WORK/llama.cpp-build, unless already built there. Nothing of it is kept in the repo.
2. Makes the F16 model with bench/make_models.py, then the other types with
   llama-quantize, so both programs read byte-identical files.
3. For every type and thread count, runs llama-bench and lowbit bench alternately
   for --rounds rounds (each round: llama.cpp, lowbit, and the --lowbit-base
   binary if given; R repetitions each), and prints the mean t/s of each, the
   ratio lowbit / llama.cpp (of the means; the spread of the per-round ratios
   beside it) and tg as a fraction of the read bandwidth limit (weights read
   per token / measured bandwidth). With --lowbit-base (an older build), its
   ratio to llama.cpp from the same rounds is printed too: before and after.
Prints a Markdown table ready for BENCHMARKS.md.
"""
import argparse
import json
import os
import platform
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run(cmd, **kw):
    print("+", " ".join(cmd), file=sys.stderr)
    return subprocess.run(cmd, check=True, text=True, **kw)


def build_llama(src, build):
    bins = os.path.join(build, "bin")
    if all(os.path.exists(os.path.join(bins, b)) for b in ("llama-bench", "llama-quantize")):
        return bins
    run(["cmake", "-S", src, "-B", build, "-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON",
         "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_SERVER=OFF"], stdout=subprocess.DEVNULL)
    run(["cmake", "--build", build, "-j", str(os.cpu_count() or 2), "--target", "llama-bench", "llama-quantize"],
        stdout=subprocess.DEVNULL)
    return bins


def make_models(work, shape, types, bins):
    f16 = os.path.join(work, f"{shape}-f16.gguf")
    if not os.path.exists(f16):
        run([sys.executable, os.path.join(HERE, "make_models.py"), work, "--shape", shape])
    files = {}
    for t in types:
        if t.upper() == "F16":
            files[t] = f16
            continue
        out = os.path.join(work, f"{shape}-{t.lower()}.gguf")
        if not os.path.exists(out):
            run([os.path.join(bins, "llama-quantize"), f16, out, t.upper()], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
        files[t] = out
    return files


def llama_bench(bins, model, threads, p, n, reps, depth=0):
    out = run([os.path.join(bins, "llama-bench"), "-m", model, "-t", str(threads), "-p", str(p), "-n", str(n),
               "-r", str(reps), "-d", str(depth), "-o", "json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
    res = {}
    for row in json.loads(out):
        key = "pp" if row["n_prompt"] > 0 else "tg"
        res[key] = (row["avg_ts"], row["stddev_ts"])
    return res


def lowbit_bench(lowbit, model, threads, p, n, reps, depth=0):
    res = {}
    # pp and tg in separate runs, as llama-bench does, so neither heats the other's caches.
    for key, pp, tg in (("pp", p, 0), ("tg", 0, n)):
        out = run([lowbit, "bench", "-m", model, "-t", str(threads), "-p", str(pp), "-n", str(tg), "-r", str(reps),
                   "--json"] + (["-d", str(depth)] if depth else []), stdout=subprocess.PIPE,
                  stderr=subprocess.DEVNULL).stdout
        row = json.loads(out)[0]
        res[key] = (row[f"{key}_tps"], row[f"{key}_std"])
        res["rss"] = max(res.get("rss", 0), row["peak_rss_bytes"])
    return res


def bandwidth_and_bytes(lowbit, model, threads):
    out = run([lowbit, "bench", "-m", model, "-t", str(threads), "-p", "0", "-n", "4", "-r", "1", "--json",
               "--membw"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
    row = json.loads(out)[0]
    bw = row["membw_bytes_per_s"]
    bytes_per_token = row["tg_bandwidth_fraction"] * bw / row["tg_tps"]
    return bw, bytes_per_token


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-src", required=True)
    ap.add_argument("--llama-bin", help="use llama-bench/llama-quantize from this directory instead of building")
    ap.add_argument("--shape", default="tinyllama")
    ap.add_argument("--types", default="F16,Q8_0,Q4_0,Q4_K_M")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("-p", type=int, default=512)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("-r", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds of both programs")
    ap.add_argument("-d", "--depth", type=int, default=0, help="positions already in the cache (llama-bench -d)")
    ap.add_argument("--lowbit-base", help="an older lowbit build to measure in the same rounds (before/after)")
    ap.add_argument("--work", default="/tmp/lowbit-bench")
    ap.add_argument("--lowbit", default=os.path.join(ROOT, "lowbit"))
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    bins = args.llama_bin or build_llama(os.path.abspath(args.llama_src), os.path.join(args.work, "llama.cpp-build"))
    types = args.types.split(",")
    files = make_models(args.work, args.shape, types, bins)
    threads = [int(t) for t in args.threads.split(",")]
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], text=True,
                            stdout=subprocess.PIPE).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.processor())

    rows = []
    for t in types:
        for th in threads:
            bw, bpt = bandwidth_and_bytes(args.lowbit, files[t], th)
            runs = {"llama": [], "lowbit": [], "base": []}
            for _ in range(args.rounds):  # alternate, so slow drifts of a shared machine hit all alike
                runs["llama"].append(llama_bench(bins, files[t], th, args.p, args.n, args.r, args.depth))
                runs["lowbit"].append(lowbit_bench(args.lowbit, files[t], th, args.p, args.n, args.r, args.depth))
                if args.lowbit_base:
                    runs["base"].append(lowbit_bench(args.lowbit_base, files[t], th, args.p, args.n, args.r, args.depth))

            def mean(prog, key):
                return sum(r[key][0] for r in runs[prog]) / len(runs[prog])

            def spread(prog, key):  # lowest and highest per-round ratio to llama.cpp
                q = [b[key][0] / a[key][0] for a, b in zip(runs["llama"], runs[prog])]
                return min(q), max(q)

            row = {"type": t, "threads": th, "bw": bw, "bpt": bpt, "size": os.path.getsize(files[t]),
                   "rss": max(r["rss"] for r in runs["lowbit"])}
            for key in ("pp", "tg"):
                row[key] = (mean("llama", key), mean("lowbit", key), spread("lowbit", key),
                            mean("base", key) if args.lowbit_base else None)
            rows.append(row)
            print(f"{t} t={th}: pp {row['pp'][0]:.2f} vs {row['pp'][1]:.2f}, tg {row['tg'][0]:.2f} vs "
                  f"{row['tg'][1]:.2f}", file=sys.stderr)

    print(f"lowbit {commit} vs llama.cpp ({os.path.basename(os.path.abspath(args.llama_src))}), "
          f"{args.shape}, CPU: {cpu}, {os.cpu_count()} cores, {args.rounds} alternating rounds of -r {args.r}"
          + (f", at depth {args.depth}" if args.depth else "") + "\n")
    base = " | before: ratio pp | before: ratio tg" if args.lowbit_base else ""
    print(f"| type | threads | llama.cpp pp{args.p} | lowbit pp{args.p} | ratio (rounds) | llama.cpp tg{args.n} | "
          f"lowbit tg{args.n} | ratio (rounds) | lowbit tg % of bw limit | file MiB | lowbit peak RSS MiB{base} |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if args.lowbit_base else ""))
    for r in rows:
        limit = r["bw"] / r["bpt"]
        cells = [r["type"], str(r["threads"])]
        for key in ("pp", "tg"):
            a, b, (lo, hi), _ = r[key]
            cells += [f"{a:.2f}", f"{b:.2f}", f"{b / a:.2f} ({lo:.2f}-{hi:.2f})"]
        cells += [f"{100 * r['tg'][1] / limit:.0f}% of {limit:.1f}", f"{r['size'] / 2**20:.0f}", f"{r['rss'] / 2**20:.0f}"]
        if args.lowbit_base:
            cells += [f"{r['pp'][3] / r['pp'][0]:.2f}", f"{r['tg'][3] / r['tg'][0]:.2f}"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
