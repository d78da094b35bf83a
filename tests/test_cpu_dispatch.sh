#!/usr/bin/env bash
# test_cpu_dispatch.sh — LOWBIT_CPU end to end: the AVX-512 kernels
# (engine/kernels_avx512.c), run through SIMDe on a CPU without AVX-512
# (the *-emulated tables), generate the same greedy tokens as AVX2 on
# stories260K with Q8_0 and Q4_0 weights (packed x8 matrices: prompt tiles
# and single-token decoding), and llama2.c's reference text with F32 weights.
# A native AVX-512 table asked for on a CPU without AVX-512 falls back to
# auto. Skipped (exit 77) without the model or without the emulated tables
# (libsimde-dev at configure time).
set -u
LOWBIT=${LOWBIT:-./lowbit}
M=${SHARED_MODELS:-../shared/models}
pass=0 fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

check() { # check NAME COMMAND...: passes when COMMAND succeeds
    local name=$1; shift
    if "$@"; then pass=$((pass + 1)); echo "ok   $name"; else fail=$((fail + 1)); echo "FAIL $name"; fi
}

if [ ! -f "$M/stories260K.gguf" ]; then echo "skip: no $M/stories260K.gguf"; exit 77; fi
cpu_of() { LOWBIT_CPU=$1 "$LOWBIT" --version | sed -n 's/.*(cpu: \(.*\))$/\1/p'; }

# Native tables: only where cpuid has the ISA, never an illegal instruction.
if grep -qw avx512f /proc/cpuinfo && grep -qw avx512bw /proc/cpuinfo && grep -qw avx512vl /proc/cpuinfo &&
   grep -qw avx512dq /proc/cpuinfo; then
    echo "note: this CPU has AVX-512; the native tables are checked too"
    natives="avx512"
    grep -qw avx512_vnni /proc/cpuinfo && natives="$natives avx512vnni"
else
    natives=""
    check "LOWBIT_CPU=avx512 on a CPU without AVX-512 falls back to auto" [ "$(cpu_of avx512)" = "$(cpu_of auto)" ]
    check "LOWBIT_CPU=avx512vnni on a CPU without AVX-512 falls back to auto" [ "$(cpu_of avx512vnni)" = "$(cpu_of auto)" ]
fi
check "auto never picks an emulated table" sh -c "! LOWBIT_CPU=auto '$LOWBIT' --version | grep -q emulated"

if [ "$(cpu_of avx512vnni-emulated)" != avx512vnni-emulated ] || [ "$(cpu_of avx2)" != avx2 ]; then
    echo "skip: no emulated AVX-512 tables in this build (configure found no simde/x86/avx512.h) or no AVX2"
    [ $fail -eq 0 ] || exit 1
    exit 77
fi

# llama2.c's reference greedy text for stories260K (SOURCES.md), from F32 weights.
ref="Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.
Lily's mom said,"
LOWBIT_CPU=avx512vnni-emulated "$LOWBIT" run -m "$M/stories260K.gguf" -p "" -n 72 --temp 0 >"$tmp/f32.txt" 2>/dev/null
check "avx512vnni-emulated, F32: llama2.c's greedy text" \
    python3 -c "import sys; assert open('$tmp/f32.txt').read().startswith(sys.argv[1])" "$ref"

# A short prompt (one 4-token tile and a remainder) and a long one (many tiles).
long="Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw"
for profile in q8_0 q4_0; do
    for isa in avx2 avx512-emulated avx512vnni-emulated $natives; do
        LOWBIT_CPU=$isa "$LOWBIT" run -m "$M/stories260K.gguf" --profile $profile -p "Once upon a time" -n 60 \
            --temp 0 --json >"$tmp/$profile-$isa-short.json" 2>/dev/null
        LOWBIT_CPU=$isa "$LOWBIT" run -m "$M/stories260K.gguf" --profile $profile -p "$long" -n 40 \
            --temp 0 --json >"$tmp/$profile-$isa-long.json" 2>/dev/null
    done
    for isa in avx512-emulated avx512vnni-emulated $natives; do
        for len in short long; do
            check "$isa, $profile, $len prompt: the same greedy tokens and text as avx2" python3 - \
                "$tmp/$profile-avx2-$len.json" "$tmp/$profile-$isa-$len.json" <<'EOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert a["gen_tokens"] > 0 and a["ids"] == b["ids"] and a["text"] == b["text"], (a["text"], b["text"])
EOF
        done
    done
done

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
