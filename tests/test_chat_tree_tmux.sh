#!/usr/bin/env bash
# test_chat_tree_tmux.sh — conversations as trees and /compare on a real
# terminal: tmux runs `lowbit chat` on stories260K, send-keys types,
# capture-pane reads the screen (the helpers are those of test_chat_tmux.sh).
#
# An earlier message is edited through the F7 selection (e) and the branch
# counter <2/2> appears; < and > switch between the two branches; /regen
# writes a sibling answer and the two are browsed; /compare q4_0 shows both
# answers side by side with their footers, the source's KL 0 and q4_0's above
# 0, then one above the other at 90 columns; a profile switch's progress bar
# is seen advancing (LOWBIT_TEST_SWITCH_DELAY_MS slows each matrix); a restart
# finds the tree, the footers and the compare again. The screen of the compare
# is written to the log (and to $LOWBIT_CAPTURE when set, for the README).
# Every wait is bounded. Skipped (77) without tmux or the model.
set -u
LOWBIT=${LOWBIT:-./lowbit}
M=${SHARED_MODELS:-../shared/models}
command -v tmux >/dev/null || { echo "skip: tmux not installed"; exit 77; }
[ -f "$M/stories260K.gguf" ] || { echo "skip: no $M/stories260K.gguf"; exit 77; }

pass=0 fail=0
tmp=$(mktemp -d)
sock="lowbit-tree-$$"
T() { tmux -L "$sock" -f /dev/null "$@"; }
trap 'T kill-server 2>/dev/null; rm -rf "$tmp"' EXIT

check() { # check NAME COMMAND...
    local name=$1; shift
    if "$@"; then pass=$((pass + 1)); echo "ok   $name"; else fail=$((fail + 1)); echo "FAIL $name"; fi
}
screen() { T capture-pane -t chat -p; }
# wait_for TEXT [SECONDS]: until the screen shows TEXT
wait_for() {
    local deadline=$((SECONDS + ${2:-15}))
    while [ $SECONDS -lt $deadline ]; do
        screen 2>/dev/null | grep -qF -- "$1" && return 0
        sleep 0.2
    done
    echo "  (timed out waiting for '$1'; screen:)"; screen | sed 's/^/  | /'
    return 1
}
# wait_gone TEXT [SECONDS]: until the screen no longer shows TEXT
wait_gone() {
    local deadline=$((SECONDS + ${2:-30}))
    while [ $SECONDS -lt $deadline ]; do
        screen 2>/dev/null | grep -qF -- "$1" || return 0
        sleep 0.2
    done
    echo "  (timed out waiting for '$1' to go)"; return 1
}
shows() { screen | grep -qF -- "$1"; }
lacks() { ! screen | grep -qF -- "$1"; }
# idle: the reply just asked for has started (seen, or given 3 s under load) and ended
idle() {
    local deadline=$((SECONDS + 3))
    while [ $SECONDS -lt $deadline ] && ! screen 2>/dev/null | grep -qF "generating - Esc stops"; do sleep 0.05; done
    wait_gone "generating - Esc stops" 30
}

start() {
    T new-session -d -s chat -x 124 -y 40 \
        "env TERM=screen LANG=C.UTF-8 LC_ALL=C.UTF-8 XDG_DATA_HOME='$tmp/data' LOWBIT_TEST_TOKEN_DELAY_MS=5 \
         LOWBIT_TEST_SWITCH_DELAY_MS=60 '$LOWBIT' chat -m '$M/stories260K.gguf' --template raw -n 24 -t 1; \
         echo EXITED \$?; sleep 30"
}

start
check "screen comes up" wait_for "F1 help"
T send-keys -t chat "Once upon a time" Enter
check "first answer" idle
check "the answer has a footer (profile, tokens, TTFT, tok/s)" wait_for "f32 · 24 tok · TTFT" 5
T send-keys -t chat "The little dog" Enter
check "second answer" idle
check "messages are numbered" bash -c "tmux -L '$sock' capture-pane -t chat -p | grep -q 'You #3' && tmux -L '$sock' capture-pane -t chat -p | grep -q 'lowbit #4'"

# Edit message 3 through the selection: F7 selects the last message, Up
# moves to #3, e puts "/edit 3 The little dog" into the input box; the text
# is changed there and sent.
T send-keys -t chat F7
check "F7 selects the last message" wait_for "> lowbit #4" 5
T send-keys -t chat Up
check "Up selects message 3" wait_for "> You #3" 5
T send-keys -t chat e
check "e puts /edit 3 and the old text into the input box" wait_for "/edit 3 The little dog" 5
T send-keys -t chat BSpace BSpace BSpace "cat" Enter
check "the edited branch is answered" idle
check "branch counter on the edited message" wait_for "You #3  <2/2>" 5
check "the new text is shown" shows "The little cat"
check "the old text is not" lacks "The little dog"

# Switch branches with < and > on the selected message.
T send-keys -t chat F7 Up
check "select message 3 again" wait_for "> You #3  <2/2>" 5
T send-keys -t chat '<'
check "< shows the first branch (1/2) with the old text" wait_for "> You #3  <1/2>" 5
check "the old branch's text and answer are back" shows "The little dog"
T send-keys -t chat '>'
check "> shows the second branch again" wait_for "> You #3  <2/2>" 5
check "with its text" shows "The little cat"
T send-keys -t chat Escape; sleep 0.3 # Esc and the next key at once read as Alt-key
check "Esc ends the selection" wait_gone "> You #3" 5

# Regenerate: a sibling of answer 4, then switch between the two.
T send-keys -t chat "/regen" Enter
check "regenerated answer" idle
check "answer 4 has two siblings" wait_for "lowbit #4  <2/2>" 5
check "the panel says how many cached tokens were reused" bash -c "tmux -L '$sock' capture-pane -t chat -p | grep -Eq 'reused   [1-9][0-9]*, prefilled [0-9]+'"
T send-keys -t chat F7 '<'
check "< on the answer shows the first one" wait_for "> lowbit #4  <1/2>" 5
T send-keys -t chat '>'
check "> back to the regenerated one" wait_for "> lowbit #4  <2/2>" 5
T send-keys -t chat Escape; sleep 0.3 # Esc and the next key at once read as Alt-key

# F8 opens the picker for /compare; Esc closes it. Then /compare q4_0.
T send-keys -t chat F8
check "F8 opens the compare picker" wait_for "compare with - Enter" 5
T send-keys -t chat Escape; sleep 0.3 # Esc and the next key at once read as Alt-key
check "Esc closes it" wait_gone "compare with - Enter" 5
T send-keys -t chat F2 # the session list off: wider columns
T send-keys -t chat "/compare q4_0" Enter
check "the copy is built with a progress bar" wait_for "building the copy [" 10
check "compare finishes" idle
check "compare: both answers, each with profile and bpw" wait_for "q4_0 · 7.12 bpw" 15
check "compare: the source side" shows "f32 · 32.00 bpw"
check "compare: side by side at 124 columns" bash -c "tmux -L '$sock' capture-pane -t chat -p | grep -q 'f32 · 32.00 bpw.*│ q4_0 · 7.12 bpw'"
check "compare: both footers (tok, TTFT, tok/s)" bash -c "[ \$(tmux -L '$sock' capture-pane -t chat -p | grep -o 'tok · TTFT' | wc -l) -ge 2 ]"
kl=$(screen | grep -o 'KL [0-9.]* nats' | awk '{print $2}' | tr '\n' ' ')
echo "  KL divergences on screen: $kl"
kl_src=$(echo "$kl" | awk '{print $1}') kl_q4=$(echo "$kl" | awk '{print $2}')
check "compare: the source's KL is 0" test "$kl_src" = "0.0000"
check "compare: q4_0's KL is above 0 ($kl_q4)" awk -v k="$kl_q4" 'BEGIN { exit !(k + 0 > 0) }'
check "compare: top-1 agreement shown" shows "top-1 "
check "compare: the status line sums it up" shows "compared: f32 KL 0.0000 nats"
check "compare answer is a third sibling" shows "lowbit #4  <2/3>"
echo "  the compare view:"; screen | sed "s/^/  | /"
if [ -n "${LOWBIT_CAPTURE:-}" ]; then # the README's picture: 24 rows hold it all
    T resize-window -t chat -x 124 -y 24
    sleep 0.5
    T send-keys -t chat C-l
    sleep 0.5
    screen > "$LOWBIT_CAPTURE"
fi

# Narrow terminal: one above the other.
T resize-window -t chat -x 90 -y 40
sleep 0.5
T send-keys -t chat C-l
check "at 90 columns: still both profiles" wait_for "q4_0 · 7.12 bpw" 5
check "at 90 columns: one above the other" bash -c "! tmux -L '$sock' capture-pane -t chat -p | grep -q 'f32 · 32.00 bpw.*q4_0'"
check "at 90 columns: both KL lines" bash -c "[ \$(tmux -L '$sock' capture-pane -t chat -p | grep -c 'KL [0-9.]* nats') -eq 2 ]"
T resize-window -t chat -x 124 -y 40
sleep 0.3

# The profile switch's progress bar advances (60 ms per matrix, 37 matrices).
T send-keys -t chat "/profile q8_0" Enter
check "switch: the progress bar shows" wait_for "Switching profile" 5
p1=$(screen | grep -o '\] *[0-9]*%' | head -1 | tr -dc '0-9')
sleep 0.6
p2=$(screen | grep -o '\] *[0-9]*%' | head -1 | tr -dc '0-9')
echo "  progress: ${p1:-?}% then ${p2:-?}%"
check "switch: the progress bar advances" test "${p2:-0}" -gt "${p1:-100}"
check "switch: done" wait_for "active   q8_0" 15

# Quit and restart: the tree, the footers and the compare are restored.
T send-keys -t chat "/quit" Enter
check "quits with status 0" wait_for "EXITED 0" 15
T kill-session -t chat
f=$(ls "$tmp/data/lowbit/sessions/"*.session)
check "session file: format 2 with stats and compare records" bash -c "head -1 '$f' | grep -q 'lowbit-session 2' && grep -q '^stats ' '$f' && grep -q '^compare ' '$f'"
start
check "restart: screen comes up" wait_for "F1 help"
check "restart: the compare is back" wait_for "q4_0 · 7.12 bpw" 10
check "restart: branch counters are back" shows "You #3  <2/2>"
check "restart: the edited branch is shown" shows "The little cat"
T send-keys -t chat F7 Up '<'
check "restart: the first branch is still there" wait_for "The little dog" 5
T send-keys -t chat Escape; sleep 0.3 # Esc and the next key at once read as Alt-key
T send-keys -t chat C-d
check "restart: Ctrl-D quits with status 0" wait_for "EXITED 0" 15

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
