#!/usr/bin/env bash
# test_cli.sh — the `lowbit` command line, as a user runs it, on the real
# stories260K model in ../shared/models (skipped, exit 77, when it is absent).
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
contains() { grep -qF -- "$2" "$1"; }
status_is() { local want=$1; shift; "$@" >/dev/null 2>&1; [ $? -eq "$want" ]; }

if [ ! -f "$M/stories260K.gguf" ]; then echo "skip: no $M/stories260K.gguf"; exit 77; fi

# llama2.c's reference greedy text for stories260K (SOURCES.md).
ref="Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.
Lily's mom said,"

"$LOWBIT" run -m "$M/stories260K.gguf" -p "" -n 72 --temp 0 >"$tmp/gguf.txt" 2>"$tmp/gguf.err"
check "run: GGUF greedy text equals llama2.c's" python3 -c "import sys; assert open('$tmp/gguf.txt').read().startswith(sys.argv[1])" "$ref"
check "run: statistics go to stderr" contains "$tmp/gguf.err" "tok/s"
"$LOWBIT" run -m "$M/stories260K.bin" --tokenizer "$M/tok512.bin" -p "" -n 72 --temp 0 >"$tmp/bin.txt" 2>/dev/null
check "run: llama2.c checkpoint gives the same text" cmp -s "$tmp/gguf.txt" "$tmp/bin.txt"
for t in 1 2; do
    "$LOWBIT" run -m "$M/stories260K.gguf" -p "" -n 72 --temp 0 -t $t >"$tmp/t$t.txt" 2>/dev/null
done
check "run: -t 1 and -t 2 agree" cmp -s "$tmp/t1.txt" "$tmp/t2.txt"
"$LOWBIT" run -m "$M/stories260K.gguf" -p "" -n 72 --temp 0 --kv-type f32 >"$tmp/f32kv.txt" 2>/dev/null
check "run: f32 KV cache gives the same greedy text" cmp -s "$tmp/gguf.txt" "$tmp/f32kv.txt"

# JSON: one object on stdout, nothing streamed.
"$LOWBIT" run -m "$M/stories260K.gguf" -p "Once upon a time" -n 20 --temp 0 --json >"$tmp/run.json" 2>/dev/null
check "run --json: fields and counts" python3 - "$tmp/run.json" <<'EOF'
import json, sys
o = json.load(open(sys.argv[1]))
for k in ("text", "ids", "prompt_tokens", "gen_tokens", "prefill_tps", "decode_tps", "load_s", "peak_rss_bytes"):
    assert k in o, k
assert o["gen_tokens"] == len(o["ids"]) == 20, o
assert o["prompt_tokens"] == 5, o  # BOS + 4 pieces
assert o["text"].startswith(", there was"), o["text"]
assert o["decode_tps"] > 0 and o["prefill_tps"] > 0 and o["peak_rss_bytes"] > 1 << 20
EOF

# Sampling: the same seed gives the same text; another seed another text.
for s in 7 7 8; do
    "$LOWBIT" run -m "$M/stories260K.gguf" -p "Once" -n 40 --temp 1.0 --seed $s >>"$tmp/seed$s.txt" 2>/dev/null
done
check "run --seed: same seed, same output" python3 -c "
import sys; a=open('$tmp/seed7.txt').read().split('\n'); assert a[0]==a[1] and a[0], a"
check "run --seed: another seed, another output" bash -c "! cmp -s <(head -1 $tmp/seed7.txt) $tmp/seed8.txt"
"$LOWBIT" run -m "$M/stories260K.gguf" -p "" -n 60 --temp 0 --stop "Lily" >"$tmp/stop.txt" 2>/dev/null
check "run --stop: text ends before the stop string" python3 -c "
t=open('$tmp/stop.txt').read(); assert t == 'Once upon a time, there was a little girl named \n', repr(t)"

# tokenize
"$LOWBIT" tokenize -m "$M/stories260K.gguf" -p "Once upon a time, there was a little girl named Lily." --json >"$tmp/tok.json"
check "tokenize --json: ids as sentencepiece gives them, BOS first" python3 -c "
import json; o=json.load(open('$tmp/tok.json'))
assert o['ids']==[1,403,407,261,378,432,383,286,261,376,298,315,421,395,317,426], o
assert len(o['pieces'])==len(o['ids']) and o['pieces'][1]=='▁Once', o"

# info
"$LOWBIT" info "$M/stories260K.gguf" >"$tmp/info.txt"
check "info: architecture" contains "$tmp/info.txt" "architecture:    llama"
check "info: GQA heads" contains "$tmp/info.txt" "heads:           8 (kv heads 4"
check "info: tensor table" contains "$tmp/info.txt" "tensors (48):"
check "info: bits per weight" contains "$tmp/info.txt" "32.000 bits per weight"

# bench: one JSON object per profile with the fields llama-bench users expect.
"$LOWBIT" bench -m "$M/stories260K.gguf" --profile source,q8_0 -p 16 -n 8 -r 2 --json >"$tmp/bench.json" 2>/dev/null
check "bench --json: a list with pp/tg ± std, size, bpw and peak RSS per profile" python3 - "$tmp/bench.json" <<'EOF2'
import json, sys
rows = json.load(open(sys.argv[1]))
assert [r["profile"] for r in rows] == ["source", "q8_0"], rows
for r in rows:
    for k in ("pp_tps", "pp_std", "tg_tps", "tg_std", "size_bytes", "bpw", "peak_rss_bytes"):
        assert k in r and r[k] >= 0, (k, r)
    assert r["pp_tps"] > 0 and r["tg_tps"] > 0
assert rows[1]["size_bytes"] < rows[0]["size_bytes"] / 2 and rows[1]["bpw"] < rows[0]["bpw"], rows
EOF2
check "bench: an unknown profile is an error (1)" status_is 1 "$LOWBIT" bench -m "$M/stories260K.gguf" --profile nonesuch -p 4 -n 2 -r 1
# bench --kv-type: the cache's bytes follow the element type (F16 2, Q8_0 34/32, fp8 1 byte per element).
for kv in f16 q8_0 fp8; do
    "$LOWBIT" bench -m "$M/stories260K.gguf" --kv-type $kv -p 8 -n 4 -r 1 --json >"$tmp/kv-$kv.json" 2>/dev/null
done
check "bench --kv-type q8_0/fp8: kv_type and smaller kv_bytes in the JSON" python3 - "$tmp" <<'EOF2'
import json, os, sys
r = {kv: json.load(open(os.path.join(sys.argv[1], f"kv-{kv}.json")))[0] for kv in ("f16", "q8_0", "fp8")}
assert [r[k]["kv_type"] for k in ("f16", "q8_0", "fp8")] == ["F16", "Q8_0", "E4M3"], r
assert r["q8_0"]["kv_bytes"] * 64 == r["f16"]["kv_bytes"] * 34 and r["fp8"]["kv_bytes"] * 2 == r["f16"]["kv_bytes"], r
EOF2
"$LOWBIT" bench -m "$M/stories260K.gguf" -d 100 -p 8 -n 4 -r 1 --json >"$tmp/depth.json" 2>/dev/null
check "bench -d 100: runs at depth, n_depth in the JSON" python3 -c \
    "import json,sys; r=json.load(open(sys.argv[1]))[0]; assert r['n_depth']==100 and r['tg_tps']>0 and r['pp_tps']>0" "$tmp/depth.json"
check "bench --kv-type q4_0 is a usage error (2)" status_is 2 "$LOWBIT" bench -m "$M/stories260K.gguf" --kv-type q4_0 -p 4 -n 2 -r 1

# Finding the model without -m.
mkdir -p "$tmp/xdg/lowbit/models"
ln -s "$(cd "$M" && pwd)/stories260K.gguf" "$tmp/xdg/lowbit/models/a.gguf"
check "run: newest .gguf in \$XDG_DATA_HOME/lowbit/models" bash -c \
    "env -u LOWBIT_MODEL XDG_DATA_HOME=$tmp/xdg '$LOWBIT' run -p '' -n 5 --temp 0 2>/dev/null | grep -q 'Once upon'"
check "run: \$LOWBIT_MODEL" bash -c \
    "LOWBIT_MODEL='$M/stories260K.gguf' '$LOWBIT' run -p '' -n 5 --temp 0 2>/dev/null | grep -q 'Once upon'"
env -u LOWBIT_MODEL XDG_DATA_HOME="$tmp/empty" "$LOWBIT" run -p hi >/dev/null 2>"$tmp/nomodel.err"
check "run: no model found says how to get one" contains "$tmp/nomodel.err" "pass -m MODEL.gguf"

# Errors: one line, non-zero status.
check "run: missing prompt is a usage error (2)" status_is 2 "$LOWBIT" run -m "$M/stories260K.gguf"
check "run: unknown option (2)" status_is 2 "$LOWBIT" run -m "$M/stories260K.gguf" -p x --bogus
check "run: bad number (2)" status_is 2 "$LOWBIT" run -m "$M/stories260K.gguf" -p x --top-p 2
check "run: missing file (1)" status_is 1 "$LOWBIT" run -m "$tmp/nope.gguf" -p x
"$LOWBIT" run -m "$tmp/nope.gguf" -p x 2>"$tmp/missing.err"
check "run: missing file message names it, one line" bash -c \
    "grep -q 'nope.gguf: cannot open' '$tmp/missing.err' && [ \$(wc -l <'$tmp/missing.err') -eq 1 ]"
head -c 5000 "$M/stories260K.gguf" >"$tmp/cut.gguf"
"$LOWBIT" info "$tmp/cut.gguf" 2>"$tmp/cut.err"
check "info: truncated GGUF is a one-line error naming the file" bash -c \
    "grep -q 'cut.gguf' '$tmp/cut.err' && [ \$(wc -l <'$tmp/cut.err') -eq 1 ]"
for c in run info tokenize bench quantize perplexity chat; do
    check "$c --help (0)" status_is 0 "$LOWBIT" $c --help
done
check "unknown command (2)" status_is 2 "$LOWBIT" frobnicate

# Speculative decoding (issue 6): greedy text unchanged, statistics in the JSON.
"$LOWBIT" run -m "$M/stories260K.gguf" -p "" -n 72 --temp 0 --draft "$M/stories260K.bin" \
    --draft-tokenizer "$M/tok512.bin" >"$tmp/spec_bin.txt" 2>"$tmp/spec_bin.err"
check "run --draft (llama2.c, --draft-tokenizer): same greedy text" cmp -s "$tmp/gguf.txt" "$tmp/spec_bin.txt"
check "run --draft: statistics on stderr" contains "$tmp/spec_bin.err" "acceptance 100.0%"
"$LOWBIT" run -m "$M/stories260K.gguf" -p "Once upon a time" -n 40 --temp 0 --json >"$tmp/plain40.json" 2>/dev/null
"$LOWBIT" run -m "$M/stories260K.gguf" -p "Once upon a time" -n 40 --temp 0 --json --draft-profile q4_0 \
    --draft-max 5 >"$tmp/spec.json" 2>/dev/null
check "run --draft-profile --json: same ids as plain greedy, speculative statistics" \
    python3 - "$tmp/plain40.json" "$tmp/spec.json" <<'EOF3'
import json, sys
plain, spec = (json.load(open(f)) for f in sys.argv[1:3])
assert spec["ids"] == plain["ids"], (spec["ids"], plain["ids"])
s = spec["speculative"]
assert s["draft_profile"] == "q4_0" and s["draft_max"] == 5
assert s["drafted"] >= s["accepted"] >= 0 and s["generated"] == s["accepted"] + s["steps"] == len(spec["ids"])
assert abs(s["acceptance_rate"] - s["accepted"] / s["drafted"]) < 1e-3
assert abs(s["mean_accepted"] - s["accepted"] / s["steps"]) < 1e-2
assert s["plain_decode_tps"] > 0 and abs(s["speedup"] - spec["decode_tps"] / s["plain_decode_tps"]) < 1e-2
EOF3
python3 - "$M/stories260K.gguf" "$tmp/renamed.gguf" <<'EOF4'
import sys
b = open(sys.argv[1], "rb").read()
open(sys.argv[2], "wb").write(b.replace(b"<unk>", b"<unK>", 1))
EOF4
"$LOWBIT" run -m "$M/stories260K.gguf" -p x --draft "$tmp/renamed.gguf" 2>"$tmp/vocab.err" >/dev/null
check "run --draft with another vocabulary: one-line error naming the token" bash -c \
    "grep -q \"token 0 is '<unK>' (expected '<unk>'\" '$tmp/vocab.err' && [ \$(wc -l <'$tmp/vocab.err') -eq 1 ]"
check "run --draft-max out of range (2)" status_is 2 "$LOWBIT" run -m "$M/stories260K.gguf" -p x --draft-max 65

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
