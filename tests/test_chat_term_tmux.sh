#!/usr/bin/env bash
# test_chat_term_tmux.sh — the chat's terminal habits on a real terminal:
# tmux runs `lowbit chat` on stories260K, send-keys and paste-buffer type,
# capture-pane reads the screen, pipe-pane records the raw bytes the program
# writes.
#
#  - Markdown in a stored answer (heading, bold, code block label), F9 raw text;
#  - CJK, in a stored answer and in a typed message, wraps at widths 40 and
#    100 without a broken character, every row filled as far as the next
#    character allows, and a resize reflows it from the stored text;
#  - /copy and /copy N write OSC 52 with the base64 of the answer / the block,
#    also wrapped for tmux passthrough;
#  - Ctrl-R finds an earlier input from the history file; Ctrl-X Ctrl-E edits
#    in $EDITOR (and a failing editor is reported);
#  - a 20-line bracketed paste is one message;
#  - Ctrl-C during a reply stops it and keeps the partial answer, a second
#    Ctrl-C at the empty prompt quits with status 0 and the terminal restored
#    (cooked mode, main screen, bracketed paste off);
#  - a small context: the turns that leave the model's view are named, the
#    90% warning shows; SIGTERM quits cleanly;
#  - the line REPL (--plain): Ctrl-C stops a reply, then quits.
# Every wait is bounded. Skipped (77) without tmux, python3 or the model.
set -u
LOWBIT=${LOWBIT:-./lowbit}
M=${SHARED_MODELS:-../shared/models}
command -v tmux >/dev/null || { echo "skip: tmux not installed"; exit 77; }
command -v python3 >/dev/null || { echo "skip: python3 not installed"; exit 77; }
[ -f "$M/stories260K.gguf" ] || { echo "skip: no $M/stories260K.gguf"; exit 77; }

pass=0 fail=0
tmp=$(mktemp -d)
sock="lowbit-term-$$"
T() { tmux -u -L "$sock" -f /dev/null "$@"; }
trap 'T kill-server 2>/dev/null; rm -rf "$tmp"' EXIT

check() { # check NAME COMMAND...
    local name=$1; shift
    if "$@"; then pass=$((pass + 1)); echo "ok   $name"; else fail=$((fail + 1)); echo "FAIL $name"; fi
}
screen() { T capture-pane -t chat -p; }
wait_for() { # wait_for TEXT [SECONDS]
    local deadline=$((SECONDS + ${2:-15}))
    while [ $SECONDS -lt $deadline ]; do
        screen 2>/dev/null | grep -qF -- "$1" && return 0
        sleep 0.2
    done
    echo "  (timed out waiting for '$1'; screen:)"; screen | sed 's/^/  | /'
    return 1
}
wait_gone() { # wait_gone TEXT [SECONDS]
    local deadline=$((SECONDS + ${2:-30}))
    while [ $SECONDS -lt $deadline ]; do
        screen 2>/dev/null | grep -qF -- "$1" || return 0
        sleep 0.2
    done
    echo "  (timed out waiting for '$1' to go)"; return 1
}
not_on_screen() { ! screen | grep -qF -- "$1"; }
# wait_reply N: until the saved session has N user messages and no reply is being written
wait_reply() {
    local deadline=$((SECONDS + 30))
    while [ $SECONDS -lt $deadline ]; do
        if [ "$(messages | grep -c '^user')" -ge "$1" ] && ! screen | grep -qF generating; then return 0; fi
        sleep 0.2
    done
    echo "  (timed out waiting for reply $1)"; return 1
}
# The stored session's messages, one per line: ROLE<TAB>TEXT (escapes undone).
messages() {
    python3 - "$tmp/data/lowbit/sessions" <<'EOF'
import glob, sys
for path in glob.glob(sys.argv[1] + "/*.session"):
    for line in open(path, encoding="utf-8"):
        # format 1: "msg ROLE TEXT"; format 2: "node PARENT ROLE TEXT" (no branches here)
        if line.startswith("msg "):
            role, _, text = line[4:].rstrip("\n").partition(" ")
        elif line.startswith("node "):
            role, _, text = line[5:].rstrip("\n").partition(" ")[2].partition(" ")
        else:
            continue
        text = text.replace("\\\\", "\0").replace("\\n", "\n").replace("\\t", "\t").replace("\\r", "\r").replace("\0", "\\")
        print(role + "\t" + text.replace("\n", "\\n"))
EOF
}

# --- fixtures: a stored session with a Markdown + CJK answer, a history file, an editor
CJK="量化会让模型变小，但每一位都有代价。我们在终端里比较两个配置的回答，看看散度和一致率怎样变化。长的中文段落没有空格，所以换行必须落在两个汉字之间，而不是在一个汉字的字节中间。日本語の文章も同じです。"
CODE='def double(x):
    return 2 * x'
mkdir -p "$tmp/data/lowbit/sessions"
python3 - "$tmp/data/lowbit/sessions/stored.session" "$CJK" "$CODE" <<'EOF'
import sys
path, cjk, code = sys.argv[1:]
answer = "# Plan\nUse **bold** and `inline code`.\n```python\n" + code + "\n```\n" + cjk
esc = lambda s: s.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
open(path, "w", encoding="utf-8").write(
    "lowbit-session 1\nname stored\ntemplate raw\nprofile \nsystem \ntemp 0.8\ntop_k 40\ntop_p 0.95\n"
    "min_p 0.05\nrepeat_penalty 1\nseed random\nmsg user show me\nmsg assistant " + esc(answer) + "\nend 2\n")
EOF
printf 'alpha one\nbeta two\ngamma three\n' > "$tmp/data/lowbit/history"
cat > "$tmp/editor.sh" <<'EOF'
#!/bin/sh
grep -q FAILME "$1" && exit 3
printf 'from the editor\nsecond line\n' > "$1"
EOF
chmod +x "$tmp/editor.sh"

# The transcript rows holding TEXT's characters (the panel's inner text,
# without the 2-column indent), checked by python: each row at most WIDTH
# columns, no broken character, rows joined give TEXT back, and each row
# but the last is full up to the next character.
check_wrap() { # check_wrap WIDTH TEXT
    screen > "$tmp/screen.txt"
    python3 - "$1" "$2" "$tmp/screen.txt" <<'EOF'
import sys, unicodedata
width, text, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def cols(s): return sum(2 if unicodedata.east_asian_width(c) in "WF" else 0 if unicodedata.combining(c) else 1 for c in s)
groups, last = [], -2                       # runs of consecutive screen lines
for k, line in enumerate(open(path, encoding="utf-8")):
    fields = line.rstrip("\n").split("│")
    if len(fields) < 5: continue
    row = fields[3][2:].rstrip(" ")           # │sessions││transcript││panel│, less the indent
    if not row or not all(c in text for c in row): continue
    if k != last + 1: groups.append([])
    groups[-1].append(row)
    last = k
ok, whole = True, 0
for rows in groups:
    joined = "".join(rows)
    if "\ufffd" in joined: print("  U+FFFD on screen"); ok = False
    if joined == text: whole += 1
    elif not text.endswith(joined): print("  rows do not give the text back:", rows); ok = False
    for i, r in enumerate(rows):
        if cols(r) > width: print("  row %d is %d columns > %d: %s" % (i, cols(r), width, r)); ok = False
        if i + 1 < len(rows) and cols(r) + cols(rows[i + 1][0]) <= width:
            print("  row %d (%d columns) had room for the next character" % (i, cols(r))); ok = False
rows = [r for g in groups for r in g]
if not whole: print("  no message on screen in full"); ok = False
print("  %d messages, %d rows at width %d, row widths %s" % (whole, len(rows), width, sorted(set(cols(r) for r in rows))))
sys.exit(0 if ok and rows else 1)
EOF
}

start() { # start COLUMNS EXTRA-ARGS...
    local cols=$1; shift
    T new-session -d -s chat -x "$cols" -y 40 \
        "env TERM=screen LANG=C.UTF-8 LC_ALL=C.UTF-8 XDG_DATA_HOME='$tmp/data' LOWBIT_TEST_TOKEN_DELAY_MS=30 \
         EDITOR='$tmp/editor.sh' VISUAL= '$LOWBIT' chat -m '$M/stories260K.gguf' --template raw -t 1 $*; \
         echo EXITED \$?; stty -a | tr ' ;' '\n\n' | grep -x -e icanon -e -icanon -e echo -e -echo | tr '\n' ' '; echo; cat -v"
}

# 100 columns: sessions 20 + transcript 44 (40 columns of text) + panel 36.
# --ignore-eos: the replies that Ctrl-C interrupts and that fill the small
# context must not end early with a sampled end-of-story token.
start 100 --session stored -n 100 --ignore-eos
check "screen comes up" wait_for "F1 help"

# --- Markdown
check "markdown: heading without its #" wait_for "  Plan"
check "markdown: the code block is labelled for /copy" wait_for "code 1 · python"
check "markdown: bold without its markers" bash -c "tmux -u -L '$sock' capture-pane -t chat -p | grep -q 'Use bold and inline code.'"
T send-keys -t chat F9
check "F9: raw text shows the markers" wait_for "Use **bold** and \`inline code\`." 5
T send-keys -t chat F9
check "F9 again: Markdown" wait_for "Use bold and inline code." 5

# --- CJK at width 40 (the stored answer)
check "CJK answer wraps at width 40 without a broken character" check_wrap 40 "$CJK"

# --- /copy: raw bytes through pipe-pane
T pipe-pane -t chat -o "cat >> '$tmp/raw.out'"
sleep 0.3
T send-keys -t chat "/copy" Enter
check "/copy reports the copy" wait_for "copied the last answer" 5
T send-keys -t chat "/copy 1" Enter
check "/copy 1 reports the block" wait_for "copied code block 1" 5
T send-keys -t chat "/copy 3" Enter
check "/copy 3: there is one block" wait_for "only 1 code block" 5
sleep 0.3
T pipe-pane -t chat
answer_b64=$(messages | awk -F'\t' '$1 == "assistant" {print $2}' | sed 's/\\n/\n/g' | head -c -1 | base64 -w0)
code_b64=$(printf '%s' "$CODE" | base64 -w0)
check "/copy: OSC 52 with the answer's base64 in the raw output" grep -qaF $'\e]52;c;'"$answer_b64"$'\a' "$tmp/raw.out"
check "/copy: the same wrapped for tmux (DCS passthrough)" grep -qaF $'\ePtmux;\e\e]52;c;'"$answer_b64"$'\a\e\\' "$tmp/raw.out"
check "/copy 1: OSC 52 with the code block's base64" grep -qaF $'\e]52;c;'"$code_b64"$'\a' "$tmp/raw.out"

# --- Ctrl-R: an input from the history file
T send-keys -t chat C-r
check "Ctrl-R opens the search" wait_for "reverse-i-search ''" 5
T send-keys -t chat -l "bet"
check "Ctrl-R: 'bet' finds 'beta two'" wait_for "reverse-i-search 'bet'" 5
check "Ctrl-R: the match is in the box" bash -c "tmux -u -L '$sock' capture-pane -t chat -p | grep -q '│beta two '"
T send-keys -t chat Enter
check "Ctrl-R: Enter takes the match, the search ends" wait_for "message (Enter sends" 5
check "Ctrl-R: the match stays to edit" bash -c "tmux -u -L '$sock' capture-pane -t chat -p | grep -q '│beta two '"
T send-keys -t chat C-e C-u

# --- Ctrl-X Ctrl-E: the editor's text comes back into the box
T send-keys -t chat "typed first" C-x C-e
check "Ctrl-X Ctrl-E: the editor's text is in the box" wait_for "from the editor" 10
check "Ctrl-X Ctrl-E: both of its lines" wait_for "second line" 5
T send-keys -t chat C-c
check "Ctrl-C clears the box" wait_gone "from the editor" 5
T send-keys -t chat "FAILME" C-g
check "Ctrl-G: a failing editor is reported" wait_for "editor exited with status 3" 10
check "Ctrl-G: the message is unchanged" bash -c "tmux -u -L '$sock' capture-pane -t chat -p | grep -q '│FAILME '"
T send-keys -t chat C-c

# --- a 20-line bracketed paste is one message
users_before=$(messages | grep -c '^user')
seq -f "pasted line %g" 1 20 > "$tmp/paste.txt"
T load-buffer -b p "$tmp/paste.txt"
T paste-buffer -p -b p -t chat
check "paste: 20 lines in the box, not sent" wait_for "pasted 20 lines" 5
check "paste: nothing was sent yet" test "$(messages | grep -c '^user')" -eq "$users_before"
T send-keys -t chat Enter
check "paste: the reply to it finishes" wait_reply $((users_before + 1))
users_after=$(messages | grep -c '^user')
check "paste: one new user message ($users_before -> $users_after)" test "$users_after" -eq $((users_before + 1))
expected=$(seq -f "pasted line %g" 1 20 | sed -z 's/\n/\\n/g')
check "paste: the message holds all 20 lines" bash -c "[ \"\$(printf '%s' \"\$1\" | grep '^user' | tail -1 | cut -f2)\" = \"\$2\" ]" _ "$(messages)" "$expected"

# --- CJK typed as a message, then both at width 100 after a resize
T send-keys -t chat -l "$CJK"
T send-keys -t chat Enter
check "CJK message: the reply finishes" wait_reply $((users_after + 1))
check "CJK message at width 40" check_wrap 40 "$CJK"
T resize-window -t chat -x 160
sleep 0.5
check "resize to 160 columns: reflowed at width 100" check_wrap 100 "$CJK"
T resize-window -t chat -x 100
sleep 0.5
check "back to 100 columns: width 40 again" check_wrap 40 "$CJK"

# --- Ctrl-C during a reply: stopped, partial answer kept; a second Ctrl-C quits
T send-keys -t chat "Once upon a time" Enter
check "Ctrl-C: the reply is being written" wait_for "generating" 10
sleep 0.8
T send-keys -t chat C-c
check "Ctrl-C: the reply stopped" wait_for "stopped; the partial answer" 5
check "Ctrl-C: generating no more" wait_gone "generating" 5
sleep 0.2
a1=$(messages | tail -1)
sleep 0.5
a2=$(messages | tail -1)
check "Ctrl-C: the partial answer is saved and does not grow" bash -c "[ -n \"\$1\" ] && [ \"\$1\" = \"\$2\" ] && printf '%s' \"\$1\" | grep -q '^assistant'" _ "$a1" "$a2"
n_words=$(printf '%s' "$a1" | cut -f2 | wc -w)
check "Ctrl-C: the partial answer has text ($n_words words)" test "$n_words" -ge 1
check "Ctrl-C: still running after the first" wait_for "F1 help" 2
T send-keys -t chat C-c
check "second Ctrl-C at the empty prompt: exit status 0" wait_for "EXITED 0" 10
check "terminal restored: no panel left" not_on_screen "F1 help"
check "terminal restored: cooked mode (icanon echo)" wait_for "icanon echo" 5
check "terminal restored: main screen" test "$(T display -p -t chat '#{alternate_on}')" = 0
check "terminal restored: no mouse reporting" test "$(T display -p -t chat '#{mouse_any_flag}')" = 0
# With bracketed paste still on, tmux would wrap this paste in ESC[200~ ESC[201~ and cat -v would show ^[[200~.
printf 'after exit\n' > "$tmp/p2.txt"
T load-buffer -b q "$tmp/p2.txt"
T paste-buffer -p -b q -t chat
check "terminal restored: bracketed paste off" wait_for "after exit" 5
check "terminal restored: no paste markers" not_on_screen "[200~"
check "history: the messages sent are in the history file" grep -qx "Once upon a time" "$tmp/data/lowbit/history"
check "history: the file is private (0600)" test "$(stat -c %a "$tmp/data/lowbit/history")" = 600
T kill-session -t chat

# --- a small context: turns leave the model's view, by name; the 90% warning
start 120 --session small -c 64 -n 64 --kld-every 0 --ignore-eos
check "small context: screen comes up" wait_for "F1 help"
T send-keys -t chat "Once upon a time there was a dog" Enter
check "small context: the first reply fills the context" wait_for "NEARLY FULL" 30
check "small context: the panel warns" wait_for "nearly full: old turns go next" 5
wait_gone "generating" 30 >/dev/null
T send-keys -t chat "The dog liked to run in the park" Enter
check "small context: the transcript marks turn 1 out of view" wait_for "turn 1 above: out of the model's view" 30
check "small context: the panel names it" wait_for "unseen   turn 1 (still shown)" 5
wait_gone "generating" 30 >/dev/null
# SIGTERM: a clean exit, the terminal restored. The pane's shell runs lowbit as its child.
pane_pid=$(T display -p -t chat '#{pane_pid}')
lowbit_pid=$(pgrep -P "$pane_pid" | head -1)
check "SIGTERM: lowbit found (child of pid $pane_pid)" test -n "$lowbit_pid"
[ -n "$lowbit_pid" ] && kill -TERM "$lowbit_pid"
check "SIGTERM: exit status 0" wait_for "EXITED 0" 10
check "SIGTERM: terminal restored" wait_for "icanon echo" 5

T kill-session -t chat

# --- the line REPL (--plain): Ctrl-C stops a reply, at the prompt it quits
start 100 --session plain -n 200 --plain --ignore-eos
sleep 1
T send-keys -t chat "Once upon a time" Enter
sleep 1
T send-keys -t chat C-c
check "REPL: Ctrl-C stops the reply" wait_for "stopped; the partial answer is kept" 10
T send-keys -t chat C-c
check "REPL: Ctrl-C at the prompt quits with status 0" wait_for "EXITED 0" 10

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
