#!/usr/bin/env bash
# test_chat_tmux.sh — `lowbit chat` on a real terminal: tmux runs the program
# on stories260K, send-keys types, capture-pane reads the screen.
#
# Two messages are sent and both answers are seen streaming (replies are slowed
# to 40 ms a token with LOWBIT_TEST_TOKEN_DELAY_MS so a capture lands mid-reply),
# the profile is switched with F4 in the picker and the panel's bits per weight
# and weight memory change, /quit leaves a clean terminal, and a restart finds
# the session restored. Every wait is bounded. Skipped (77) without tmux or
# the model. The log shows the screen after the switch.
set -u
LOWBIT=${LOWBIT:-./lowbit}
M=${SHARED_MODELS:-../shared/models}
command -v tmux >/dev/null || { echo "skip: tmux not installed"; exit 77; }
[ -f "$M/stories260K.gguf" ] || { echo "skip: no $M/stories260K.gguf"; exit 77; }

pass=0 fail=0
tmp=$(mktemp -d)
sock="lowbit-test-$$"
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
# The text of the panel row starting with LABEL ("active", "weights").
panel() { screen | grep -o -- "│ $1 .*│\$" | head -1 | sed 's/│$//; s/ *$//'; }
reply_chars() { screen | grep -o '│  [^│]*' | tr -d ' │' | wc -c; }

start() {
    T new-session -d -s chat -x 124 -y 36 \
        "env TERM=screen LANG=C.UTF-8 LC_ALL=C.UTF-8 XDG_DATA_HOME='$tmp/data' LOWBIT_TEST_TOKEN_DELAY_MS=40 \
         '$LOWBIT' chat -m '$M/stories260K.gguf' --template raw -n 40 --kld-every 4 -t 1; echo EXITED \$?; sleep 30"
}

start
check "screen comes up with the live panel" wait_for "F1 help"
check "panel shows the source precision (f32)" wait_for "active   f32, 32.00 bpw"

# First message: the reply streams (captured while generating), then ends.
T send-keys -t chat "Once upon a time" Enter
check "first answer: generating shows" wait_for "generating - Esc stops" 10
early=$(reply_chars)
check "first answer: a partial reply is on screen mid-stream" wait_for "lowbit" 5
sleep 0.5
mid=$(reply_chars)
check "first answer: it grows while streaming ($early -> $mid chars)" test "$mid" -gt "$early"
check "first answer: finishes" wait_gone "generating - Esc stops" 30
done1=$(reply_chars)
check "first answer: complete reply longer than mid-stream ($mid -> $done1)" test "$done1" -gt "$mid"

# Second message: same, and the context grows by only the new turn.
T send-keys -t chat "The little dog" Enter
check "second answer: generating shows" wait_for "generating - Esc stops" 10
sleep 0.4
mid2=$(reply_chars)
check "second answer: finishes" wait_gone "generating - Esc stops" 30
done2=$(reply_chars)
check "second answer: streamed ($mid2 -> $done2 chars)" test "$done2" -gt "$mid2"
check "both messages are in the transcript" bash -c "tmux -L '$sock' capture-pane -t chat -p | grep -q 'Once upon a time' && tmux -L '$sock' capture-pane -t chat -p | grep -q 'The little dog'"

# Profile switch with the picker: F4, down to q8_0, Enter.
before_active=$(panel active) before_weights=$(panel weights)
T send-keys -t chat F4
check "F4 opens the profile picker" wait_for "profile - Enter switches" 5
check "picker lists q8_0 with its size" wait_for "q8_0" 5
for _ in 1 2 3; do T send-keys -t chat Down; sleep 0.1; done
T send-keys -t chat Enter
check "switch finishes" wait_for "active   q8_0" 30
after_active=$(panel active) after_weights=$(panel weights)
echo "  panel: '$before_active' -> '$after_active'; '$before_weights' -> '$after_weights'"
check "panel bits per weight changed" test "$before_active" != "$after_active"
check "panel weight memory changed" test "$before_weights" != "$after_weights"
check "panel shows before -> after" wait_for "profile f32 -> q8_0" 5
# A reply with the new weights: the live KL divergence gets sampled.
T send-keys -t chat "Lily" Enter
check "third answer with the new weights finishes" wait_gone "generating - Esc stops" 30
check "live KL divergence sampled" wait_for "live KL  0." 10
echo "  the screen after the switch and a third reply:"; screen | sed "s/^/  | /"

# Quit: the terminal comes back (no curses screen left), exit status 0.
T send-keys -t chat "/quit" Enter
check "quits with status 0" wait_for "EXITED 0" 15
check "terminal restored (no panel left on screen)" bash -c "! tmux -L '$sock' capture-pane -t chat -p | grep -q 'F1 help'"
T kill-session -t chat

# Restart: the session is restored, with its profile.
start
check "restart: screen comes up" wait_for "F1 help"
check "restart: first message restored" wait_for "Once upon a time" 5
check "restart: second message restored" wait_for "The little dog" 5
check "restart: profile restored (q8_0)" wait_for "active   q8_0" 30
T send-keys -t chat C-d
check "restart: Ctrl-D quits with status 0" wait_for "EXITED 0" 15
ls "$tmp/data/lowbit/sessions/"*.session >/dev/null 2>&1
check "one session file on disk" test "$(ls "$tmp/data/lowbit/sessions/" | grep -c '\.session$')" -eq 1

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
