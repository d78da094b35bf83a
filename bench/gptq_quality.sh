#!/usr/bin/env bash
# gptq_quality.sh — GPTQ against round-to-nearest on one model, same grid, same tool.
#
#   bench/gptq_quality.sh [MODEL.gguf] [WORK_DIR]
#
# MODEL defaults to ../shared/models/stories260K.gguf, WORK_DIR to /tmp/lowbit-gptq-bench.
# 1. Text: the model writes its own calibration and evaluation text with `lowbit run`
#    (temperature 1, prompt "Once upon a time"): seeds 1-200 for calibration, 1001-1100
#    held out for evaluation. Kept in WORK_DIR and reused.
# 2. The F32 (or F16) input is the base: `lowbit perplexity --ctx $CTX --save-logits`.
# 3. Each configuration is quantized (`lowbit quantize`, with --calib for GPTQ ones; the
#    time is quantize's own) and scored with `--kld-base`: PPL, mean and p99 KLD, top-1.
# 4. With llama.cpp's llama-perplexity ($LLAMA_BIN), the GPTQ Q4_0 file is scored there too.
# Prints a Markdown table. Environment: LOWBIT (default ./lowbit), CTX (default 512), THREADS
# (default 2), CALIB_CTX and CALIB_SAMPLES (default: the profiles', 512 and 128).
set -eu
LOWBIT=${LOWBIT:-./lowbit}
MODEL=${1:-../shared/models/stories260K.gguf}
WORK=${2:-/tmp/lowbit-gptq-bench}
CTX=${CTX:-512}
THREADS=${THREADS:-2}
LLAMA_BIN=${LLAMA_BIN:-/tmp/lowbit-bench/llama.cpp-build/bin}
calib_args=()
[ -n "${CALIB_CTX:-}" ] && calib_args+=(--calib-ctx "$CALIB_CTX")
[ -n "${CALIB_SAMPLES:-}" ] && calib_args+=(--calib-samples "$CALIB_SAMPLES")
mkdir -p "$WORK"

gen() { # gen FILE FIRST LAST
    [ -s "$1" ] && return
    for s in $(seq "$2" "$3"); do
        printf 'Once upon a time'
        "$LOWBIT" run -m "$MODEL" -p "Once upon a time" -n 400 --temp 1 --seed "$s" -t "$THREADS" 2>/dev/null
        echo
    done >"$1"
}
gen "$WORK/calib.txt" 1 200
gen "$WORK/eval.txt" 1001 1100

# Profiles beside the shipped ones: the same GPTQ on other grids, and ablations of gptq-4bit-g32.
gptq_profile() { # NAME BITS SYM SCALE ACT TRUE_SEQ
    cat >"$WORK/$1.yaml" <<EOF
name: $1
method: gptq
gptq:
  bits: $2
  group_size: 32
  symmetric: $3
  scale: $4
  act_order: $5
  static_groups: $5
  true_sequential: $6
EOF
}
gptq_profile gptq-4bit-g32-asym 4 false minmax true true
gptq_profile gptq-5bit-g32 5 true signed_max true true
gptq_profile gptq-8bit-g32 8 true minmax true true
gptq_profile ablate-minmax 4 true minmax true true
gptq_profile ablate-no-act-order 4 true signed_max false true
gptq_profile ablate-not-true-seq 4 true signed_max true false

"$LOWBIT" perplexity -m "$MODEL" -f "$WORK/eval.txt" --ctx "$CTX" -t "$THREADS" --json \
    --save-logits "$WORK/base.lp" >"$WORK/base.json" 2>/dev/null
field() { python3 -c "import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; print(v)" "$1" "$2"; }
echo "base: $(basename "$MODEL"), PPL $(field "$WORK/base.json" ppl) ± $(field "$WORK/base.json" ppl_stderr)," \
     "$(field "$WORK/base.json" tokens) scored tokens, ctx $CTX"
echo
echo "| profile | method | bpw | KiB | PPL | mean KLD | p99 KLD | same top-1 | quantize |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
row() { # PROFILE [--calib]
    local p=$1 name out extra=()
    name=$(basename "$p" .yaml)
    out="$WORK/$name.gguf"
    [ "${2:-}" = calib ] && extra=(--calib "$WORK/calib.txt" "${calib_args[@]}")
    if ! "$LOWBIT" quantize -m "$MODEL" --profile "$p" -o "$out" -t "$THREADS" -q "${extra[@]}" \
            >"$WORK/$name.q" 2>"$WORK/$name.err"; then
        echo "| $name | $([ "${2:-}" = calib ] && echo GPTQ || echo RTN) | – | – | – | – | – | – | $(head -c 160 "$WORK/$name.err") |"
        return
    fi
    local line bpw secs
    line=$(grep "bits per weight" "$WORK/$name.q")
    bpw=$(sed -n 's/.* \([0-9.]*\) bits per weight.*/\1/p' <<<"$line")
    secs=$(sed -n 's/.*, \([0-9.]*\) s$/\1/p' <<<"$line")
    "$LOWBIT" perplexity -m "$out" -f "$WORK/eval.txt" --ctx "$CTX" -t "$THREADS" --json \
        --kld-base "$WORK/base.lp" >"$WORK/$name.json" 2>/dev/null
    python3 - "$WORK/$name.json" "$name" "${2:-rtn}" "$bpw" "$(stat -c %s "$out")" "$secs" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
name, method, bpw, size, secs = sys.argv[2:7]
print(f"| {name} | {'GPTQ' if method == 'calib' else 'RTN'} | {float(bpw):.2f} | {int(size) / 1024:.0f} | "
      f"{j['ppl']:.4f} | {j['kld_mean']:.5f} | {j['kld_p99']:.4f} | {100 * j['top1_agreement']:.1f} % | {secs} s |")
EOF
}
row f16
row q8_0
row "$WORK/gptq-8bit-g32.yaml" calib
row q5_0
row "$WORK/gptq-5bit-g32.yaml" calib
row q4_1
row "$WORK/gptq-4bit-g32-asym.yaml" calib
row q4_0
row gptq-4bit-g32 calib
row gptq-4bit-g128 calib
row "$WORK/ablate-minmax.yaml" calib
row "$WORK/ablate-no-act-order.yaml" calib
row "$WORK/ablate-not-true-seq.yaml" calib

if [ -x "$LLAMA_BIN/llama-perplexity" ]; then
    for f in q4_0 gptq-4bit-g32; do
        ppl=$(LD_LIBRARY_PATH=$LLAMA_BIN "$LLAMA_BIN/llama-perplexity" -m "$WORK/$f.gguf" -f "$WORK/eval.txt" \
              -c "$CTX" -b "$CTX" -t "$THREADS" --log-file "$WORK/llama-$f.log" >/dev/null 2>&1;
              sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p' "$WORK/llama-$f.log")
        echo "llama-perplexity on $f.gguf: PPL $ppl (lowbit: $(field "$WORK/$f.json" ppl))"
    done
fi
