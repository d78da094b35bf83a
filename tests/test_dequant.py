#!/usr/bin/env python3
"""test_dequant.py -- our block codecs against gguf-py's numpy reference.

For every tensor type in the engine's table (`types_dump list`):
  * dequantize: random blocks (random bytes, with the fp16 scale fields set
    to finite values, a few of them subnormal) decoded by tests/types_dump
    must equal gguf.quants.dequantize bit for bit. gguf-py has no Q8_1 or
    Q8_K codec; for those the reference is the two-line numpy formula below.
  * quantize: for the types gguf-py can quantize (F16, BF16, Q4_0, Q4_1,
    Q5_0, Q5_1, Q8_0), our reference quantizer must write the same bytes as
    gguf.quants.quantize on random rows, zero rows, constant rows and rows
    with exact rounding ties.

No 1-ulp allowance is needed: both sides do the same float32 operations in
the same order (ggml's order: (d * sc) * q for Q6_K, d * q - m for the _1
and k-quant mins), and both round scales to fp16 with round-to-nearest-even.

Finds the tool through $TYPES_DUMP, else $top_builddir/tests/types_dump,
else the repository's tests/types_dump, else /tmp/types_build/types_dump.
Exit status: 0 all passed, 1 a check failed, 77 skipped (numpy, gguf or
types_dump missing).
"""
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    from gguf import GGMLQuantizationType as QT
    import gguf.quants
except ImportError as e:  # pragma: no cover - environment dependent
    print(f"SKIP: {e}")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))

# Offsets of the scale fields in each block: (offset, "f16" | "f32").
# Everything else in a block is free-form bits and stays random.
SCALE_FIELDS = {
    "Q4_0": [(0, "f16")],
    "Q4_1": [(0, "f16"), (2, "f16")],
    "Q5_0": [(0, "f16")],
    "Q5_1": [(0, "f16"), (2, "f16")],
    "Q8_0": [(0, "f16")],
    "Q8_1": [(0, "f16"), (2, "f16")],
    "Q2_K": [(80, "f16"), (82, "f16")],
    "Q3_K": [(108, "f16")],
    "Q4_K": [(0, "f16"), (2, "f16")],
    "Q5_K": [(0, "f16"), (2, "f16")],
    "Q6_K": [(208, "f16")],
    "Q8_K": [(0, "f32")],
}

# gguf-py's size table still lists Q8_1 with float d and s (40 bytes); ggml's
# ggml-common.h stores them as fp16 (36 bytes), and blocks.h follows ggml.
# Q8_1 is an activation format that never appears in GGUF files.
KNOWN_SIZE_DIFFERENCES = {"Q8_1": (32, 40)}

QUANTIZABLE = ["F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"]


def find_types_dump():
    candidates = []
    if os.environ.get("TYPES_DUMP"):
        candidates.append(os.environ["TYPES_DUMP"])
    if os.environ.get("top_builddir"):
        candidates.append(os.path.join(os.environ["top_builddir"], "tests", "types_dump"))
    candidates += [os.path.join(HERE, "types_dump"), "/tmp/types_build/types_dump"]
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def report(self, ok, what, detail=""):
        if ok:
            self.passed += 1
            print(f"ok   {what}")
        else:
            self.failed += 1
            print(f"FAIL {what}: {detail}")


def run_tool(tool, *args):
    subprocess.run([tool, *args], check=True)


def random_blocks(rng, name, block_bytes, n_blocks):
    """Random bytes with finite scale fields; block 0 gets subnormal scales."""
    if name == "F32":
        return rng.standard_normal(n_blocks).astype(np.float32).view(np.uint8)
    if name == "F16":
        vals = rng.standard_normal(n_blocks).astype(np.float32) * np.float32(100)
        vals[:8] = np.float32(2.0**-20) * np.arange(8)  # subnormals
        return vals.astype(np.float16).view(np.uint8)
    if name == "BF16":
        bits = rng.integers(0, 1 << 16, n_blocks, dtype=np.uint32).astype(np.uint16)
        bits[(bits & 0x7F80) == 0x7F80] &= 0xBFFF  # no inf / NaN: clear an exponent bit
        return bits.view(np.uint8)
    data = rng.integers(0, 256, (n_blocks, block_bytes), dtype=np.uint8)
    for off, kind in SCALE_FIELDS[name]:
        if kind == "f16":
            vals = rng.uniform(-2.0, 2.0, n_blocks).astype(np.float16)
            vals[0] = np.float16(2.0**-20)  # subnormal half
            data[:, off:off + 2] = vals.view(np.uint8).reshape(n_blocks, 2)
        else:
            vals = rng.uniform(-0.05, 0.05, n_blocks).astype(np.float32)
            data[:, off:off + 4] = vals.view(np.uint8).reshape(n_blocks, 4)
    return data.reshape(-1)


def reference_dequantize(name, data, block_bytes):
    if name == "Q8_1":  # d, s, qs[32]; s is not needed to decode
        blocks = data.reshape(-1, block_bytes)
        d = blocks[:, 0:2].copy().view(np.float16).astype(np.float32)
        return (blocks[:, 4:].view(np.int8).astype(np.float32) * d).reshape(-1)
    if name == "Q8_K":  # float d, qs[256], bsums
        blocks = data.reshape(-1, block_bytes)
        d = blocks[:, 0:4].copy().view(np.float32)
        return (d * blocks[:, 4:260].view(np.int8).astype(np.float32)).reshape(-1)
    return gguf.quants.dequantize(data, QT[name]).reshape(-1)


def random_rows(rng, block_size, n_blocks):
    """Gaussian rows at several scales, plus the awkward cases."""
    x = rng.standard_normal((n_blocks, block_size)).astype(np.float32)
    x *= np.float32(10.0) ** rng.uniform(-3, 3, (n_blocks, 1)).astype(np.float32)
    x[0] = 0.0  # all zero: d = 0, id = 0
    x[1] = 0.75  # constant: zero range for the _1 types
    # Rounding ties: extreme 127 gives Q8_0 d = 1, so the .5 values are exact ties.
    tie = (np.arange(block_size) % 9 - 4.5).astype(np.float32)
    tie[0] = 127.0
    x[2] = tie
    x[3, :] = rng.standard_normal(block_size).astype(np.float32)
    x[3, 0], x[3, 1] = 3.0, -3.0  # equal magnitudes, opposite signs: first one wins
    return x


def main():
    tool = find_types_dump()
    if tool is None:
        print("SKIP: types_dump not built (set TYPES_DUMP or top_builddir)")
        return 77
    out = subprocess.run([tool, "list"], check=True, capture_output=True, text=True).stdout
    types = [(f[0], int(f[1]), int(f[2])) for f in (line.split() for line in out.splitlines())]
    checks = Checks()
    rng = np.random.default_rng(20240601)

    with tempfile.TemporaryDirectory() as tmp:
        bin_path = os.path.join(tmp, "in.bin")
        f32_path = os.path.join(tmp, "out.f32")
        for name, block_size, block_bytes in types:
            if name not in QT.__members__:  # lowbit's own types (NF4, FP4): gguf-py has no reference
                print(f"note {name}: not a ggml type, no gguf reference; tests/test_types.c checks it")
                continue
            ref_size = gguf.constants.GGML_QUANT_SIZES.get(QT[name])
            if KNOWN_SIZE_DIFFERENCES.get(name) == ref_size:
                print(f"note {name}: gguf-py lists {ref_size}, ggml-common.h and ours "
                      f"{(block_size, block_bytes)} (fp16 d and s)")
            else:
                checks.report(ref_size == (block_size, block_bytes), f"{name} block size and bytes",
                              f"ours {(block_size, block_bytes)}, gguf {ref_size}")

            # --- dequantize random blocks ---
            n_blocks = 4096 if block_size == 1 else 512
            data = random_blocks(rng, name, block_bytes, n_blocks)
            data.tofile(bin_path)
            run_tool(tool, "dequantize", name, bin_path, f32_path)
            ours = np.fromfile(f32_path, dtype=np.float32)
            ref = reference_dequantize(name, data, block_bytes).astype(np.float32)
            same = ours.shape == ref.shape and np.array_equal(ours.view(np.uint32), ref.view(np.uint32))
            detail = ""
            if not same and ours.shape == ref.shape:
                bad = np.nonzero(ours.view(np.uint32) != ref.view(np.uint32))[0]
                ulps = np.abs(ours.view(np.int32).astype(np.int64) - ref.view(np.int32).astype(np.int64))
                detail = (f"{bad.size} of {ours.size} values differ, first at {bad[0]}: ours {ours[bad[0]]!r}, "
                          f"gguf {ref[bad[0]]!r}, max {ulps.max()} ulp")
            elif not same:
                detail = f"shape {ours.shape} vs {ref.shape}"
            src = "numpy formula" if name in ("Q8_1", "Q8_K") else "gguf.quants"
            checks.report(same, f"{name} dequantize {n_blocks} random blocks == {src} (bit-exact)", detail)

            # --- quantize random rows ---
            if name not in QUANTIZABLE:
                continue
            rows = random_rows(rng, 256 if block_size == 1 else block_size, 256)
            rows.tofile(os.path.join(tmp, "in.f32"))
            run_tool(tool, "quantize", name, os.path.join(tmp, "in.f32"), bin_path)
            ours_q = np.fromfile(bin_path, dtype=np.uint8)
            ref_q = np.asarray(gguf.quants.quantize(rows, QT[name])).view(np.uint8).reshape(-1)
            same = ours_q.shape == ref_q.shape and np.array_equal(ours_q, ref_q)
            detail = ""
            if not same and ours_q.shape == ref_q.shape:
                bad = np.nonzero(ours_q != ref_q)[0]
                detail = f"{bad.size} of {ours_q.size} bytes differ, first in block {bad[0] // block_bytes}"
            elif not same:
                detail = f"size {ours_q.size} vs {ref_q.size}"
            checks.report(same, f"{name} quantize {rows.shape[0]} rows == gguf.quants.quantize (byte-exact)", detail)

    print(f"{checks.passed} passed, {checks.failed} failed")
    return 0 if checks.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
