#!/usr/bin/env bash
# test_perplexity.sh — `lowbit perplexity` on the real stories260K model
# (../shared/models; exit 77 when absent) and a TinyStories-like text written
# here. With llama.cpp's llama-perplexity ($LLAMA_BIN, or the build at
# /tmp/lowbit-bench/llama.cpp-build/bin), our PPL must equal the one it prints within 1e-3
# relative; in any case the KL divergence must behave: 0 and top-1 1.0
# against itself, > 0 for a quantized profile, and larger for Q4_0 than Q8_0.
set -u
LOWBIT=${LOWBIT:-./lowbit}
M=${SHARED_MODELS:-../shared/models}
LLAMA_BIN=${LLAMA_BIN:-/tmp/lowbit-bench/llama.cpp-build/bin}
pass=0 fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

check() { # check NAME COMMAND...: passes when COMMAND succeeds
    local name=$1; shift
    if "$@"; then pass=$((pass + 1)); echo "ok   $name"; else fail=$((fail + 1)); echo "FAIL $name"; fi
}
# field FILE KEY: a number from the JSON object in FILE
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
# holds PYTHON-EXPR: evaluated with the numbers bound by `let`
holds() { python3 -c "import sys; sys.exit(0 if ($1) else 1)"; }

if [ ! -f "$M/stories260K.gguf" ]; then echo "skip: no $M/stories260K.gguf"; exit 77; fi
model=$M/stories260K.gguf

cat >"$tmp/text.txt" <<'EOF'
Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. One day, she saw a big red ball under a tree. She ran to the ball and picked it up. It was shiny and new.
Lily's mom said, "Lily, you can play with the ball, but you must share it with your friends." Lily nodded and smiled. She threw the ball to her friend Tom. Tom caught the ball and laughed. They played all day until the sun went down.
One day, a little boy named Tim went to the store with his dad. He wanted to buy a toy car. His dad said, "Tim, you have to be good and wait." Tim waited and waited. At last, his dad bought him a blue car. Tim was very happy. He said, "Thank you, Dad!" and gave him a big hug.
There was a small cat who lived in a big house. The cat liked to sleep in the sun. One morning, the cat saw a bird in the garden. The cat wanted to play with the bird, but the bird flew away. The cat was sad, but then it saw a butterfly. The cat ran after the butterfly and had a lot of fun.
Once upon a time, there was a big dog named Max. Max liked to run and jump. He had a friend, a little bird named Sue. Every day, Sue sat on Max's back and they went to the park together. One day, it started to rain. Max and Sue ran home fast. They sat by the warm fire and were happy.
Ben and Mia were brother and sister. They liked to build things with blocks. One day, they built a tall tower. It was the tallest tower they had ever made. Then their dog came in and knocked it down. Ben was angry, but Mia said, "Let's build it again, together." So they did, and the new tower was even better.
Once there was a little fish who lived in the sea. The fish wanted to see the world above the water. One day, he jumped high out of the water and saw the sky. It was blue and bright. He saw a boat and a bird. Then he went back into the water and told his mom all about it. His mom smiled and said, "You are a brave little fish."
Anna had a pretty doll. She took the doll everywhere she went. One day, she lost her doll at the park. She looked and looked, but she could not find it. She started to cry. Then a kind old man came and gave her the doll. He had found it by the slide. Anna said thank you and hugged her doll tight.
Once upon a time, in a small town, there lived a kind girl named Sara. She liked to help her mom in the kitchen. One day, they made a big cake for her dad. They put strawberries on top. When her dad came home, he was so surprised. They all ate the cake and laughed together. It was the best day ever.
Tom had a little red truck. He liked to push it in the sand. One day, the truck got stuck in the mud. Tom pulled and pulled, but it did not move. His friend Lucy came to help. Together they pulled the truck out of the mud. Tom said, "Thank you, Lucy. You are a good friend." They played with the truck all afternoon.
EOF

ppl() { # ppl OUT.json ARGS...: run lowbit perplexity --json on the text
    local out=$1; shift
    "$LOWBIT" perplexity -m "$model" -f "$tmp/text.txt" --json "$@" >"$out" 2>"$out.err"
}

# --- the base run: perplexity and the saved log-probabilities -------------------
ppl "$tmp/f32.json" --ctx 128 --save-logits "$tmp/base.lp"
check "perplexity: exits 0 and prints one JSON object" python3 -c "import json; json.load(open('$tmp/f32.json'))"
f32=$(field "$tmp/f32.json" ppl); err=$(field "$tmp/f32.json" ppl_stderr); n=$(field "$tmp/f32.json" tokens)
# 1296 tokens (BOS included) make 10 chunks of 128, each scoring 128 - 1 - 64 = 63 tokens.
check "perplexity: 10 chunks x 63 scored tokens" holds "$n == 630"
check "perplexity: a plausible value (1 < $f32 < 20, stderr $err)" holds "1 < $f32 < 20 and 0 < $err < $f32"
check "--save-logits: header, tokens and 630 rows of 512 floats" holds \
    "$(stat -c %s "$tmp/base.lp") == 32 + 10*128*4 + 630*512*4"
"$LOWBIT" perplexity -m "$model" -f "$tmp/text.txt" --ctx 128 >"$tmp/plain.out" 2>"$tmp/plain.err"
check "perplexity: text output has llama.cpp's final line" grep -q "^Final estimate: PPL = " "$tmp/plain.out"
check "perplexity: running estimates on stderr" grep -q "^\[1\]" "$tmp/plain.err"

# --- against llama.cpp ------------------------------------------------------------
if [ -x "$LLAMA_BIN/llama-perplexity" ]; then
    "$LLAMA_BIN/llama-perplexity" -m "$model" -f "$tmp/text.txt" -c 128 -b 128 -t 2 >"$tmp/llama.out" 2>&1
    ref=$(sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p' "$tmp/llama.out")
    # llama.cpp is an outside tool: when it fails to run, say so and skip the comparison.
    [ -n "$ref" ] || { echo "skip perplexity equals llama-perplexity: it printed no estimate:"; tail -3 "$tmp/llama.out"; }
    [ -n "$ref" ] && check "perplexity: equals llama-perplexity's $ref within 1e-3 relative (ours $f32)" \
        holds "'$ref' != '' and abs($f32 - float('${ref:-0}')) <= 1e-3 * float('${ref:-1}')"
else
    echo "skip perplexity equals llama-perplexity: no $LLAMA_BIN/llama-perplexity (set LLAMA_BIN)"
fi

# --- KL divergence ------------------------------------------------------------------
ppl "$tmp/self.json" --ctx 128 --kld-base "$tmp/base.lp"
check "--kld-base against itself: KLD 0, top-1 1.0, same PPL" holds \
    "$(field "$tmp/self.json" kld_mean) == 0 and $(field "$tmp/self.json" kld_p99) == 0 and \
     $(field "$tmp/self.json" top1_agreement) == 1.0 and $(field "$tmp/self.json" ppl) == $f32"
for p in q8_0 q4_0; do ppl "$tmp/$p.json" --ctx 128 --kld-base "$tmp/base.lp" --profile $p; done
k8=$(field "$tmp/q8_0.json" kld_mean); k4=$(field "$tmp/q4_0.json" kld_mean)
t4=$(field "$tmp/q4_0.json" top1_agreement); p99=$(field "$tmp/q4_0.json" kld_p99)
check "--profile q4_0: KLD $k4 > 0, p99 $p99 >= mean, top-1 $t4 < 1" holds "$k4 > 0 and $p99 >= $k4 and $t4 < 1"
check "--profile q8_0: KLD $k8 below q4_0's" holds "0 < $k8 < $k4"

# --- refusals -----------------------------------------------------------------------
"$LOWBIT" perplexity -m "$model" -f "$tmp/text.txt" --ctx 256 --kld-base "$tmp/base.lp" >/dev/null 2>"$tmp/ctx.err"
check "--kld-base with another --ctx: refused, naming both" grep -q "ctx 128.*expected .*256" "$tmp/ctx.err"
head -c 300 "$tmp/text.txt" >"$tmp/short.txt"
"$LOWBIT" perplexity -m "$model" -f "$tmp/short.txt" --ctx 128 >/dev/null 2>"$tmp/short.err"
check "too short a text: refused with the count needed" grep -q "needs at least 256" "$tmp/short.err"
check "--save-logits with --kld-base: refused" bash -c \
    "! '$LOWBIT' perplexity -m '$model' -f '$tmp/text.txt' --save-logits a --kld-base b 2>/dev/null"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
