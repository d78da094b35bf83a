#!/usr/bin/env python3
"""test_quants_int_py.py -- lowbit's own types against outside references.

  * FP8: all 256 E4M3 (fn) and E5M2 codes decode to exactly ml_dtypes'
    float8_e4m3fn / float8_e5m2 values (NaN where it has NaN, infinities for
    E5M2), and the encoder rounds in-range values as ml_dtypes does (to
    nearest, ties to even, subnormals included). Out of range, lowbit
    saturates to the largest finite code where ml_dtypes gives NaN (E4M3) or
    inf (E5M2); tests/test_quants_int.c checks that.
  * Files holding lowbit's own type ids (130-163) fail cleanly elsewhere: the
    gguf package raises ValueError naming the id, llama.cpp's llama-simple
    exits non-zero with "invalid ggml type" (when a llama.cpp build is found:
    $LLAMA_BIN, else /tmp/lowbit-bench/llama.cpp-build/bin), and lowbit info
    describes each type (lowbit.type.<id> key and the type's line); lowbit
    run on the file and run --profile (quantizing at load time) agree.

Uses tests/types_dump (one row per file: a float scale header, then codes)
and the lowbit program on ../shared/models/stories260K.gguf.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import lbtest as T

T.require("numpy", "gguf", "ml_dtypes")
import gguf  # noqa: E402
import ml_dtypes  # noqa: E402
import numpy as np  # noqa: E402

FP8 = {  # lowbit type name: (ml_dtypes type, largest finite value)
    "FP8_E4M3": (ml_dtypes.float8_e4m3fn, 448.0),
    "FP8_E5M2": (ml_dtypes.float8_e5m2, 57344.0),
}

# profile -> the type id its matrices get
PROFILES = {
    "int8-absmax-tensor": 130, "int8-absmax": 131, "int8-zeropoint": 134, "int4-absmax-tensor": 138,
    "int4-absmax": 139, "fp8-e4m3": 161, "fp8-e5m2": 162, "nf4-double-quant": 163,
}


def dump(tool, *args):
    r = subprocess.run([tool, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip())


def check_fp8(tool, tmp):
    for name, (dtype, largest) in FP8.items():
        # Decode: a row with scale 1.0 holding every code.
        row = struct.pack("<f", 1.0) + bytes(range(256))
        src, out = os.path.join(tmp, "in.bin"), os.path.join(tmp, "out.f32")
        with open(src, "wb") as f:
            f.write(row)
        dump(tool, "dequantize", name, src, out)
        ours = np.fromfile(out, dtype=np.float32)
        ref = np.arange(256, dtype=np.uint8).view(dtype).astype(np.float32)
        same = ours.shape == ref.shape and all(
            (np.isnan(a) and np.isnan(b)) or (a == b and np.signbit(a) == np.signbit(b)) for a, b in zip(ours, ref))
        bad = [i for i in range(min(len(ours), 256)) if not ((np.isnan(ours[i]) and np.isnan(ref[i])) or ours[i] == ref[i])]
        T.check(f"{name}: all 256 codes decode as ml_dtypes {dtype.__name__}", same,
                "" if same else f"codes {bad[:8]}: ours {ours[bad[:8]]}, ml_dtypes {ref[bad[:8]]}")

        # Encode: the largest value in the row makes the scale exactly 1, so the
        # codes are the conversions themselves.
        rng = np.random.default_rng(7)
        finite = ref[np.isfinite(ref)].astype(np.float64)
        finite.sort()
        mids = (finite[1:] + finite[:-1]) / 2  # exact ties between neighbours
        x = np.concatenate([
            [largest], rng.uniform(-largest, largest, 4000), mids[np.abs(mids) < largest],
            rng.uniform(-1, 1, 500) * np.abs(finite[finite != 0]).min() * 4,  # subnormal range
            [0.0, -0.0]]).astype(np.float32)
        x.tofile(src)
        dump(tool, "quantize", name, src, out)
        raw = np.fromfile(out, dtype=np.uint8)
        scale = raw[:4].view(np.float32)[0]
        codes = raw[4:]
        want = x.astype(dtype).view(np.uint8)
        T.check(f"{name}: row scale is 1.0 when the row's largest is {largest:g}", scale == 1.0,
                "" if scale == 1.0 else f"scale {scale!r}")
        diff = np.nonzero(codes != want)[0]
        T.check(f"{name}: {len(x)} values (random, every tie, subnormals) encode as ml_dtypes (ties to even)",
                diff.size == 0,
                f"{diff.size} differ, first x={x[diff[0]]!r}: ours {codes[diff[0]]:#04x}, ml_dtypes {want[diff[0]]:#04x}"
                if diff.size else "")


def llama_simple():
    for d in (os.environ.get("LLAMA_BIN"), "/tmp/lowbit-bench/llama.cpp-build/bin"):
        if d and os.access(os.path.join(d, "llama-simple"), os.X_OK):
            return os.path.join(d, "llama-simple")
    return None


def check_files(lowbit, model, tmp):
    simple = llama_simple()
    for profile, tid in PROFILES.items():
        path = os.path.join(tmp, f"{profile}.gguf")
        r = T.run([lowbit, "quantize", "-m", model, "--profile", profile, "-o", path, "-q"])
        if r.returncode != 0:
            T.check(f"{profile}: lowbit quantize", False, r.stderr.strip())
            continue
        info = T.run([lowbit, "info", path])
        T.check(f"{profile}: lowbit info describes type {tid}",
                info.returncode == 0 and f"lowbit.type.{tid}" in info.stdout and f"\n  {tid}  " in info.stdout,
                info.stderr.strip() if info.returncode else "")
        # The file and quantizing at load time (per-tensor types: two passes in
        # both) give the same greedy tokens.
        ids = []
        for args in (["-m", path], ["-m", model, "--profile", profile]):
            g = T.run([lowbit, "run", *args, "-p", "Once upon a time", "-n", "16", "--temp", "0", "--json"])
            ids.append(json.loads(g.stdout)["ids"] if g.returncode == 0 else g.stderr.strip())
        T.check(f"{profile}: lowbit run on the file and run --profile agree", ids[0] == ids[1],
                "" if ids[0] == ids[1] else str(ids))
        try:
            gguf.GGUFReader(path)
            msg = None
        except ValueError as e:
            msg = str(e)
        T.check(f"{profile}: the gguf package refuses the file: ValueError '{msg}'",
                msg is not None and str(tid) in msg)
        if simple is None:
            T.skip(f"{profile}: llama.cpp refuses the file", "no llama-simple (set LLAMA_BIN)")
            continue
        r = T.run([simple, "-m", path, "-n", "4", "Once upon a time"], timeout=120)
        line = next((l for l in r.stderr.splitlines() if "invalid ggml type" in l), "")
        ok = r.returncode != 0 and f"invalid ggml type {tid}" in line
        T.check(f"{profile}: llama-simple exits {r.returncode}: '{line.strip()}'", ok,
                "" if ok else r.stderr.strip()[-300:])


def main():
    tool = T.tool("types_dump")
    lowbit = T.tool("lowbit")
    if tool is None or lowbit is None:
        T.bail("types_dump or lowbit not built")
    model = T.shared("stories260K.gguf")
    with tempfile.TemporaryDirectory() as tmp:
        check_fp8(tool, tmp)
        check_files(lowbit, model, tmp)
    return T.finish()


if __name__ == "__main__":
    sys.exit(main())
