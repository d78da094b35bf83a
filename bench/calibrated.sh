#!/usr/bin/env bash
# calibrated.sh — quality of the calibrated methods against their baselines, one table.
#
#   bench/calibrated.sh MODEL.gguf CALIB.txt EVAL.txt WORKDIR [CTX] [CALIB_SAMPLES] [CALIB_CTX]
#
# For each pair (baseline, calibrated method) at the same grid or type — round to
# nearest vs AWQ at 4 bits in groups of 32 (zero point and symmetric), AWQ without its
# clipping search, Q4_0 and Q4_K_M without and with an importance matrix, vector-wise
# int8 without and with LLM.int8's outlier columns — the model is quantized with
# `lowbit quantize` (calibrated on CALIB.txt) and measured with `lowbit perplexity`
# on EVAL.txt (chunks of CTX tokens, the second half of each scored, as llama.cpp)
# against the unquantized model's saved log-probabilities. Prints one markdown row per
# profile: bits per weight over the whole file, size, PPL, mean and 99th-percentile KL
# divergence, top-1 agreement, quantize time. LOWBIT overrides the program.
set -eu
model=$1 calib=$2 eval=$3 work=$4 ctx=${5:-256} samples=${6:-64} calib_ctx=${7:-256}
LOWBIT=${LOWBIT:-$(dirname "$0")/../lowbit}
mkdir -p "$work"

# profile NAME BODY: a profile file in the work dir
profile() { printf 'name: %s\n%s\n' "$1" "$2" >"$work/$1.yaml"; }
HEAD='overrides:
  - pattern: output.weight
    type: q8_0
  - pattern: token_embd.weight
    type: q8_0'
profile rtn-g32 "method: rtn
bits: 4
granularity: group
group_size: 32
symmetric: false
$HEAD"
profile awq-g32 "method: awq
bits: 4
group_size: 32
symmetric: false
$HEAD"
profile awq-g32-noclip "method: awq
bits: 4
group_size: 32
symmetric: false
clip: false
$HEAD"
profile rtn-g32-sym "method: rtn
bits: 4
granularity: group
group_size: 32
symmetric: true
$HEAD"
profile awq-g32-sym "method: awq
bits: 4
group_size: 32
symmetric: true
$HEAD"
profile q4_0-pure "method: q4_0
pure: true
$HEAD"
profile q4_0-pure-imatrix "method: q4_0
pure: true
importance: calibration
$HEAD"
profile q4_k_m "method: q4_k_m"
profile q4_k_m-imatrix "method: q4_k_m
importance: calibration"
INT8='overrides:
  - pattern: output.weight
    type: f16
  - pattern: token_embd.weight
    type: f16
fallback: f16'
profile int8-rowwise "method: llm-int8
outlier_threshold: 1e30
$INT8"
profile llm-int8 "method: llm-int8
outlier_threshold: 6.0
$INT8"

"$LOWBIT" perplexity -m "$model" -f "$eval" --ctx "$ctx" --save-logits "$work/base.lp" --json >"$work/base.json" 2>/dev/null
field() { python3 -c "import json,sys; v=json.load(open(sys.argv[1])).get(sys.argv[2]); print(v)" "$1" "$2"; }
echo "| profile | bpw | KiB | PPL | mean KLD | p99 KLD | same top-1 | quantize |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
printf '| %s (unquantized) | | %d | %.4f | | | | |\n' "$(basename "$model")" $(( $(stat -c %s "$model") / 1024 )) \
    "$(field "$work/base.json" ppl)"
for p in rtn-g32 awq-g32-noclip awq-g32 rtn-g32-sym awq-g32-sym q4_0-pure q4_0-pure-imatrix q4_k_m q4_k_m-imatrix \
         int8-rowwise llm-int8; do
    args=()
    case $p in rtn-*) ;; *) grep -qE 'awq|importance|outlier' "$work/$p.yaml" &&
        args=(--calib "$calib" --calib-samples "$samples" --calib-ctx "$calib_ctx") ;; esac
    "$LOWBIT" quantize -q -m "$model" --profile "$work/$p.yaml" -o "$work/$p.gguf" "${args[@]}" >"$work/$p.q"
    secs=$(sed -n 's/.*, \([0-9.]*\) s$/\1/p' "$work/$p.q")
    bpw=$(sed -n 's/.* \([0-9.]*\) bits per weight.*/\1/p' "$work/$p.q")
    "$LOWBIT" perplexity -m "$work/$p.gguf" -f "$eval" --ctx "$ctx" --kld-base "$work/base.lp" --json \
        >"$work/$p.json" 2>/dev/null
    python3 - "$work/$p.json" "$p" "$bpw" $(( $(stat -c %s "$work/$p.gguf") / 1024 )) "$secs" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
print(f"| {sys.argv[2]} | {float(sys.argv[3]):.2f} | {sys.argv[4]} | {j['ppl']:.4f} | {j['kld_mean']:.6f} | "
      f"{j['kld_p99']:.5f} | {100 * j['top1_agreement']:.1f} % | {float(sys.argv[5]):.1f} s |")
EOF
done
