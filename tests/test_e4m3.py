#!/usr/bin/env python3
"""test_e4m3.py — the E4M3 (FP8) KV cache element type against ml_dtypes.

ml_dtypes' float8_e4m3fn is the OCP FP8 E4M3 format (bias 7, no infinities,
S.1111.111 is NaN) that JAX and PyTorch use; our codec (engine/kv.c) must
agree with it exactly, through `tests/types_dump` and the traits table:
  - decoding: every one of the 256 codes (NaN codes decode to NaN);
  - encoding, round to nearest even: every representable value, every
    midpoint between neighbours (ties), points just off the midpoints,
    random values over the whole range, subnormals, signed zeros;
  - saturation (ours; ml_dtypes gives NaN there): |x| >= 448 encodes to ±448,
    infinities included, and NaN to 0x7F.
"""
import os
import struct
import sys
import tempfile

import lbtest as T

T.require("numpy", "ml_dtypes")
import ml_dtypes  # noqa: E402
import numpy as np  # noqa: E402

dump = T.tool("types_dump")
if not dump:
    T.bail("tests/types_dump not built")
E4M3 = ml_dtypes.float8_e4m3fn


def ours_decode(codes, tmp):
    src, out = os.path.join(tmp, "codes.bin"), os.path.join(tmp, "decoded.f32")
    np.asarray(codes, dtype=np.uint8).tofile(src)
    r = T.run([dump, "dequantize", "E4M3", src, out])
    if r.returncode:
        T.bail(f"types_dump dequantize: {r.stderr.strip()}")
    return np.fromfile(out, dtype=np.float32)


def ours_encode(values, tmp):
    src, out = os.path.join(tmp, "values.f32"), os.path.join(tmp, "codes.bin")
    np.asarray(values, dtype=np.float32).tofile(src)
    r = T.run([dump, "quantize", "E4M3", src, out])
    if r.returncode:
        T.bail(f"types_dump quantize: {r.stderr.strip()}")
    return np.fromfile(out, dtype=np.uint8)


with tempfile.TemporaryDirectory() as tmp:
    codes = np.arange(256, dtype=np.uint8)
    ref = codes.view(E4M3).astype(np.float32)
    got = ours_decode(codes, tmp)
    nan_ok = np.array_equal(np.isnan(got), np.isnan(ref))
    same = np.array_equal(got[~np.isnan(ref)].view(np.uint32), ref[~np.isnan(ref)].view(np.uint32))
    T.check("decode: all 256 codes bit-identical to ml_dtypes (NaN codes NaN)", nan_ok and same,
            f"largest {got[0x7E]}, smallest subnormal {got[1]:.6g}")

    finite = np.sort(np.unique(np.abs(ref[np.isfinite(ref)])))  # 0 .. 448
    mids = (finite[:-1].astype(np.float64) + finite[1:]) / 2      # exact in float32: one more mantissa bit
    rng = np.random.default_rng(7)
    rand = np.concatenate([rng.uniform(-448, 448, 20000), rng.normal(0, 1, 20000),
                           rng.normal(0, 0.01, 20000), np.exp(rng.uniform(-12, 6, 20000))])
    vals = np.concatenate([finite, -finite, mids, -mids, np.nextafter(mids, 0), np.nextafter(mids, 1e9),
                           rand, [0.0, -0.0, 1e-30, -1e-30, 447.9, -447.9, 463.9]]).astype(np.float32)
    vals = vals[np.abs(vals) < 448.0 + 16.0]  # ml_dtypes overflows to NaN past the 448/480 midpoint
    want = vals.astype(E4M3).view(np.uint8)
    got = ours_encode(vals, tmp)
    bad = np.nonzero(got != want)[0]
    T.check(f"encode: {len(vals)} values (every value, midpoint, near-midpoint, random) as ml_dtypes",
            len(bad) == 0, "" if not len(bad) else
            f"{len(bad)} differ, first {vals[bad[0]]!r}: ours 0x{got[bad[0]]:02x} ml_dtypes 0x{want[bad[0]]:02x}")

    sat = np.array([448.0, 449.0, 464.0, 480.0, 1e6, np.inf, -448.0, -1e6, -np.inf, np.nan], dtype=np.float32)
    got = ours_encode(sat, tmp)
    T.check("saturation: |x| >= 448 gives ±448 (0x7E / 0xFE), NaN gives 0x7F",
            list(got) == [0x7E] * 6 + [0xFE] * 3 + [0x7F], " ".join(f"{c:02x}" for c in got))

sys.exit(T.finish())
