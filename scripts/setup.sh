#!/usr/bin/env bash
# setup.sh — install what lowbit needs on Debian (when missing), configure and build.
#
#   scripts/setup.sh          build
#   scripts/setup.sh demo     build, then generate text with the small model in ../shared/models
#   scripts/setup.sh check    build, then run the whole test suite (what .ci/run does)
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-build}
jobs=$(nproc 2>/dev/null || echo 2)

debs=(build-essential autoconf automake pkg-config libopenblas-dev libncurses-dev libyaml-dev
      libcmocka-dev libsimde-dev python3 python3-pip tmux)
missing=()
for p in "${debs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    sudo_cmd=; [ "$(id -u)" -eq 0 ] || sudo_cmd=sudo
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The reference checks in tests/ compare against these Python packages.
if [ "$mode" = check ]; then
    if ! python3 -c 'import numpy, gguf, sentencepiece, tokenizers, safetensors, ml_dtypes' 2>/dev/null; then
        echo "setup: installing Python test packages" >&2
        python3 -m pip install -q numpy gguf sentencepiece tokenizers safetensors ml_dtypes 2>&1 | grep -v WARNING >&2 || true
    fi
fi

if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
    autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
fi
if [ ! -f Makefile ] || [ configure -nt config.status ]; then
    ./configure -q
fi
make -s -j"$jobs"

case "$mode" in
build) ;;
demo)
    model=../shared/models/stories260K.gguf
    [ -f "$model" ] || { echo "setup: $model not found; run ./lowbit run -m YOUR.gguf -p 'Hello'" >&2; exit 1; }
    ./lowbit run -m "$model" -p "Once upon a time" -n 64 --temp 0
    ;;
check)
    make -s -j"$jobs" check
    ;;
*) echo "usage: $0 [build|demo|check]" >&2; exit 2 ;;
esac
