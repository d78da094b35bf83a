#!/bin/bash
# quality_types.sh — the quality table of BENCHMARKS.md's "lowbit's own types" section:
# quantize stories260K with each profile, then perplexity and KL divergence against the F32
# model on the text of tests/test_perplexity.sh (ctx 128), and decode tok/s.
#     bench/quality_types.sh [PROFILE...]      (run from the build directory)
set -eu
M=${SHARED_MODELS:-../shared/models}/stories260K.gguf
src=${top_srcdir:-.}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -n '/^cat >"$tmp\/text.txt" <<.EOF.$/,/^EOF$/p' "$src/tests/test_perplexity.sh" | sed '1d;$d' >"$tmp/text.txt"
profiles=${*:-f16 q8_0 int8-absmax int8-absmax-tensor int8-zeropoint fp8-e4m3 fp8-e5m2 q4_0 q4_1 int4-absmax \
int4-absmax-tensor nf4 nf4-double-quant int4-g128 int4-zp-g128 int3-g128}
./lowbit perplexity -m "$M" -f "$tmp/text.txt" --ctx 128 --save-logits "$tmp/base" --json -t 1 >/dev/null
echo "| profile | type | bpw | KiB | PPL | mean KLD | p99 KLD | same top-1 | quantize | tg tok/s |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for p in $profiles; do
    out=$tmp/$p.gguf
    q=$(./lowbit quantize -m "$M" --profile "$p" -o "$out" -q -t 1 2>&1 | tail -1)
    j=$(./lowbit perplexity -m "$out" -f "$tmp/text.txt" --ctx 128 --kld-base "$tmp/base" --json -t 1)
    tg=$(./lowbit bench -m "$out" -p 0 -n 64 -r 3 -t 1 2>/dev/null | grep tg64 | awk -F'|' '{print $8}' | sed 's/ *\(.*\) ± .*/\1/')
    python3 - "$p" "$q" "$(( $(stat -c %s "$out") / 1024 ))" "$j" "$tg" <<'PY'
import json, re, sys
p, q, kib, j, tg = sys.argv[1:]
ty = re.search(r"\(\w+: (\w+)\)", q).group(1)
bpw = float(re.search(r"([0-9.]+) bits per weight", q).group(1))
secs = float(re.search(r"([0-9.]+) s$", q).group(1))
d = json.loads(j)
print(f"| {p} | {ty} | {bpw:.2f} | {kib} | {d['ppl']:.4f} | {d['kld_mean']:.6f} | {d['kld_p99']:.5f} | "
      f"{100 * d['top1_agreement']:.1f} % | {secs:.2f} s | {tg.strip()} |")
PY
done
