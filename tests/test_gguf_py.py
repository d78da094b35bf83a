#!/usr/bin/env python3
"""test_gguf_py.py — our GGUF reader and writer against the `gguf` package.

1. Files written by gguf.GGUFWriter (every value type it writes, nested arrays,
   F32/F16 tensors and tensors quantized by gguf.quants.quantize, default and
   custom alignment) are read by tests/gguf_dump; every key, type, value, tensor
   shape, offset and data checksum must match what Python wrote.
2. The file our writer makes (`gguf_dump --write-test`) is read by
   gguf.GGUFReader; every field, value (nested arrays decoded from the raw
   parts), tensor and data byte must match the formulas in gguf_dump.c.
3. Version 2 files (the v3 layout with the version patched, which is all v2
   differs in for little-endian files) read the same; version 1 is refused.

The tool is $GGUF_DUMP, or $top_builddir/tests/gguf_dump (top_builddir
defaults to the repository root). Exit 0 pass, 1 fail, 77 skip.
"""
import json
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import gguf
    from gguf.quants import quantize, dequantize
except ImportError as e:
    print(f"SKIP: {e} (needs numpy and gguf)")
    sys.exit(77)

VT = gguf.GGUFValueType
QT = gguf.GGMLQuantizationType
HERE = os.path.dirname(os.path.abspath(__file__))

passed = 0
failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name}" + (f": {detail}" if detail else ""))
    return ok


def find_tool():
    """$GGUF_DUMP (must exist when set), else the built tool; None to skip."""
    path = os.environ.get("GGUF_DUMP")
    if path:
        return path
    top = os.environ.get("top_builddir") or os.path.dirname(HERE)
    path = os.path.join(top, "tests", "gguf_dump")
    return path if os.access(path, os.X_OK) else None


def fnv1a64(data: bytes) -> str:
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def pad(x, n):
    return (x + n - 1) // n * n


def run_dump(tool, path):
    p = subprocess.run([tool, path], capture_output=True)
    return p.returncode, p.stdout.decode("utf-8", "surrogateescape"), p.stderr.decode("utf-8", "replace")


def parse_dump(text):
    """The dump as {header fields}, {key: (type, value)}, [tensor tuples]."""
    head, kvs, tensors = {}, {}, []
    for line in text.splitlines():
        f = line.split("\t")
        if f[0] == "kv":
            kvs[f[1]] = (f[2], json.loads(f[3]))
        elif f[0] == "tensor":
            tensors.append((f[1], f[2], [int(x) for x in f[3].split(",")], int(f[4]), f[5]))
        else:
            head[f[0]] = int(f[1])
    return head, kvs, tensors


def same_value(vtype, got, want):
    """Compare a dumped value with the expected one; float32 compares as float32."""
    if vtype == "float32":
        return np.float32(got) == np.float32(want) or (np.isnan(got) and np.isnan(want))
    if vtype.startswith("array<"):
        item = vtype[6:-1]
        if not isinstance(got, list) or len(got) != len(want):
            return False
        if item == "array":
            return all(g[0] == w[0] and same_value(f"array<{w[0]}>", g[1], w[1]) for g, w in zip(got, want))
        return all(same_value(item, g, w) for g, w in zip(got, want))
    return got == want and type(got) is type(want)


# -----------------------------------------------------------------------------
# 1. gguf.GGUFWriter -> gguf_dump

# (key, gguf type, value, type as dumped, value as dumped)
PY_KVS = [
    ("py.uint8", VT.UINT8, 250, "uint8", 250),
    ("py.int8", VT.INT8, -7, "int8", -7),
    ("py.uint16", VT.UINT16, 65535, "uint16", 65535),
    ("py.int16", VT.INT16, -32768, "int16", -32768),
    ("py.uint32", VT.UINT32, 4294967295, "uint32", 4294967295),
    ("py.int32", VT.INT32, -123456789, "int32", -123456789),
    ("py.float32", VT.FLOAT32, 1e-5, "float32", 1e-5),
    ("py.bool_true", VT.BOOL, True, "bool", True),
    ("py.bool_false", VT.BOOL, False, "bool", False),
    ("py.string", VT.STRING, "tab\there \"q\" \\ ünïcode ▁", "string", "tab\there \"q\" \\ ünïcode ▁"),
    ("py.uint64", VT.UINT64, 2**64 - 1, "uint64", 2**64 - 1),
    ("py.int64", VT.INT64, -(2**63), "int64", -(2**63)),
    ("py.float64", VT.FLOAT64, 2.718281828459045, "float64", 2.718281828459045),
]
# (key, value, sub_type or None, type as dumped, value as dumped)
PY_ARRAYS = [
    ("py.arr.int32", [1, -2, 3], None, "array<int32>", [1, -2, 3]),
    ("py.arr.float32", [0.5, -1.25, 3.0], None, "array<float32>", [0.5, -1.25, 3.0]),
    ("py.arr.bool", [True, False], None, "array<bool>", [True, False]),
    ("py.arr.string", ["<unk>", "<s>", "▁a", "x y"], None, "array<string>", ["<unk>", "<s>", "▁a", "x y"]),
    ("py.arr.uint8", [0, 255, 7], VT.UINT8, "array<uint8>", [0, 255, 7]),
    ("py.arr.int8", [-128, 127], VT.INT8, "array<int8>", [-128, 127]),
    ("py.arr.uint16", [1, 65535], VT.UINT16, "array<uint16>", [1, 65535]),
    ("py.arr.int16", [-2, 2], VT.INT16, "array<int16>", [-2, 2]),
    ("py.arr.uint32", [3, 4294967295], VT.UINT32, "array<uint32>", [3, 4294967295]),
    ("py.arr.uint64", [2**63, 1], VT.UINT64, "array<uint64>", [2**63, 1]),
    ("py.arr.int64", [-(2**62), 5], VT.INT64, "array<int64>", [-(2**62), 5]),
    ("py.arr.float64", [0.1, 1e300], VT.FLOAT64, "array<float64>", [0.1, 1e300]),
    ("py.arr.nested", [[1, 2, 3], [4, 5]], None, "array<array>", [["int32", [1, 2, 3]], ["int32", [4, 5]]]),
    ("py.arr.nested_str", [["a", "b"], ["c"]], None, "array<array>", [["string", ["a", "b"]], ["string", ["c"]]]),
    ("py.arr.deep", [[[1.5], [2.5, 3.5]]], None, "array<array>",
     [["array", [["float32", [1.5]], ["float32", [2.5, 3.5]]]]]),
]


def py_tensors():
    """(name, array as given to add_tensor, raw_dtype, type name, ne)."""
    rng = np.random.default_rng(1234)
    out = [
        ("p.f32", rng.standard_normal((3, 8)).astype(np.float32), None, "F32", [8, 3]),
        ("p.f16", rng.standard_normal((4, 16)).astype(np.float16), None, "F16", [16, 4]),
        ("p.f32_4d", rng.standard_normal((2, 3, 4, 5)).astype(np.float32), None, "F32", [5, 4, 3, 2]),
        ("p.vec", np.arange(7, dtype=np.float32), None, "F32", [7]),
    ]
    for qname in ("Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "BF16"):
        x = rng.standard_normal((3, 64)).astype(np.float32)
        out.append((f"p.{qname.lower()}", quantize(x, QT[qname]), QT[qname], qname, [64, 3]))
    return out


def write_py_file(path, alignment=None):
    w = gguf.GGUFWriter(path, "llama")
    if alignment is not None:
        w.add_custom_alignment(alignment)
    for key, vt, val, _, _ in PY_KVS:
        w.add_key_value(key, val, vt)
    for key, val, sub, _, _ in PY_ARRAYS:
        w.add_key_value(key, val, VT.ARRAY, sub_type=sub)
    tensors = py_tensors()
    for name, arr, raw, _, _ in tensors:
        w.add_tensor(name, arr, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return tensors


def test_python_writer(tool, tmp, alignment):
    tag = f"python writer (alignment {alignment or 'default'})"
    path = os.path.join(tmp, f"py_{alignment}.gguf")
    tensors = write_py_file(path, alignment)
    rc, out, errtext = run_dump(tool, path)
    if not check(f"{tag}: gguf_dump reads it", rc == 0, errtext.strip()):
        return path, None
    head, kvs, dumped = parse_dump(out)
    align = alignment or 32
    reader = gguf.GGUFReader(path)
    check(f"{tag}: version 3", head.get("version") == 3, str(head))
    check(f"{tag}: alignment {align}", head.get("alignment") == align, str(head))
    check(f"{tag}: data offset {reader.data_offset} as gguf.GGUFReader",
          head.get("data_offset") == reader.data_offset and reader.data_offset % align == 0, str(head))

    want = {"general.architecture": ("string", "llama")}
    if alignment:
        want["general.alignment"] = ("uint32", alignment)
    for key, _, _, dt, dv in PY_KVS:
        want[key] = (dt, dv)
    for key, _, _, dt, dv in PY_ARRAYS:
        want[key] = (dt, dv)
    check(f"{tag}: {len(want)} keys", head.get("n_kv") == len(want) and len(kvs) == len(want),
          f"dump has {head.get('n_kv')}")
    for key, (dt, dv) in want.items():
        got = kvs.get(key)
        check(f"{tag}: kv {key} {dt}", got is not None and got[0] == dt and same_value(dt, got[1], dv),
              f"got {got!r}, expected {(dt, dv)!r}")

    check(f"{tag}: {len(tensors)} tensors", len(dumped) == len(tensors), f"dump has {len(dumped)}")
    offset = 0
    for (name, arr, _, tname, ne), got in zip(tensors, dumped):
        data = arr.tobytes()
        want_t = (name, tname, ne, offset, fnv1a64(data))
        check(f"{tag}: tensor {name} {tname} {ne} at {offset}", got == want_t, f"got {got}, expected {want_t}")
        offset += pad(len(data), align)
    return path, out


# -----------------------------------------------------------------------------
# 2. gguf_dump --write-test -> gguf.GGUFReader

def fp16_bits(x):
    return np.array([x], dtype=np.float16).view(np.uint16)[0]


def expected_ours():
    """The keys and tensors of gguf_dump.c's write_test, rebuilt from its formulas."""
    kvs = [
        ("general.architecture", VT.STRING, "llama"),
        ("general.alignment", VT.UINT32, 64),
        ("test.uint8", VT.UINT8, 200), ("test.int8", VT.INT8, -100),
        ("test.uint16", VT.UINT16, 60000), ("test.int16", VT.INT16, -30000),
        ("test.uint32", VT.UINT32, 4000000000), ("test.int32", VT.INT32, -2000000000),
        ("test.float32", VT.FLOAT32, 0.15625), ("test.bool", VT.BOOL, True),
        ("test.string", VT.STRING, "héllo \"world\"\n\\tab\t"),
        ("test.uint64", VT.UINT64, 2**64 - 1), ("test.int64", VT.INT64, -(2**63)),
        ("test.float64", VT.FLOAT64, 3.141592653589793),
        ("test.arr.uint8", (VT.ARRAY, VT.UINT8), [0, 1, 255]),
        ("test.arr.int8", (VT.ARRAY, VT.INT8), [-128, 0, 127]),
        ("test.arr.uint16", (VT.ARRAY, VT.UINT16), [65535, 7]),
        ("test.arr.int16", (VT.ARRAY, VT.INT16), [-32768, 32767]),
        ("test.arr.uint32", (VT.ARRAY, VT.UINT32), [1, 4294967295]),
        ("test.arr.int32", (VT.ARRAY, VT.INT32), [-1, 2, -3, 4]),
        ("test.arr.float32", (VT.ARRAY, VT.FLOAT32), [1.5, -0.25, float(np.float32(1e-5))]),
        ("test.arr.bool", (VT.ARRAY, VT.BOOL), [True, False, True]),
        ("test.arr.string", (VT.ARRAY, VT.STRING), ["<unk>", "<s>", "▁the", ""]),
        ("test.arr.uint64", (VT.ARRAY, VT.UINT64), [0, 2**63]),
        ("test.arr.int64", (VT.ARRAY, VT.INT64), [2**63 - 1, -5]),
        ("test.arr.float64", (VT.ARRAY, VT.FLOAT64), [0.1, -2.5e300]),
        ("test.arr.nested", (VT.ARRAY, VT.ARRAY), [(VT.INT32, [1, 2, 3]), (VT.INT32, [4, 5])]),
        ("test.arr.nested_string", (VT.ARRAY, VT.ARRAY), [(VT.STRING, ["a", "bc"]), (VT.STRING, ["def"])]),
        ("test.arr.deep", (VT.ARRAY, VT.ARRAY), [(VT.ARRAY, [(VT.INT32, [4, 5])])]),
    ]
    f32 = (np.arange(48, dtype=np.float32) * np.float32(0.25) - np.float32(2)).astype(np.float32)
    f16 = ((np.arange(32) - 8) * 0.5).astype(np.float16)
    q8 = bytearray()
    for b in range(4):
        q8 += np.array([(b + 1) / 8], dtype=np.float16).tobytes()
        q8 += np.array([((b * 32 + j) * 7) % 255 - 127 for j in range(32)], dtype=np.int8).tobytes()
    vec = (np.float32(1) / np.arange(1, 6, dtype=np.float32)).astype(np.float32)
    tensors = [
        ("t.f32", QT.F32, [8, 3, 2], f32.tobytes()),
        ("t.f16", QT.F16, [16, 2], f16.tobytes()),
        ("t.q8_0", QT.Q8_0, [64, 2], bytes(q8)),
        ("t.vec", QT.F32, [5], vec.tobytes()),
    ]
    return kvs, tensors


def decode_parts(parts, i, vtype):
    """One value from a ReaderField's raw parts, keeping nested arrays nested
    (ReaderField.contents() flattens them). Returns (value, next index)."""
    if vtype == VT.STRING:
        return bytes(parts[i + 1]).decode("utf-8"), i + 2
    if vtype == VT.ARRAY:
        itype, n = VT(int(parts[i][0])), int(parts[i + 1][0])
        i += 2
        items = []
        for _ in range(n):
            inner = VT(int(parts[i][0])) if itype == VT.ARRAY else None
            v, i = decode_parts(parts, i, itype)
            items.append((inner, v) if itype == VT.ARRAY else v)
        return items, i
    v = parts[i][0]
    return (bool(v) if vtype == VT.BOOL else v.item()), i + 1


def same_decoded(got, want):
    if isinstance(want, tuple):
        return isinstance(got, tuple) and got[0] == want[0] and same_decoded(got[1], want[1])
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(same_decoded(g, w) for g, w in zip(got, want))
    if isinstance(want, float):
        return got == want or np.float32(got) == np.float32(want)
    return got == want and type(got) is type(want)


def test_our_writer(tool, tmp):
    tag = "our writer"
    path = os.path.join(tmp, "ours.gguf")
    p = subprocess.run([tool, "--write-test", path], capture_output=True, text=True)
    if not check(f"{tag}: gguf_dump --write-test", p.returncode == 0, p.stderr.strip()):
        return
    try:
        r = gguf.GGUFReader(path)
    except Exception as e:  # noqa: BLE001 — any failure to read is the finding
        check(f"{tag}: gguf.GGUFReader reads it", False, repr(e))
        return
    check(f"{tag}: gguf.GGUFReader reads it", True)
    kvs, tensors = expected_ours()
    check(f"{tag}: version 3", r.fields["GGUF.version"].parts[0][0] == 3)
    check(f"{tag}: alignment 64, data offset aligned", r.alignment == 64 and r.data_offset % 64 == 0,
          f"alignment {r.alignment}, data offset {r.data_offset}")
    fields = [(k, f) for k, f in r.fields.items() if not k.startswith("GGUF.")]
    check(f"{tag}: {len(kvs)} keys in order", [k for k, _ in fields] == [k for k, _, _ in kvs],
          str([k for k, _ in fields]))
    for key, vt, want in kvs:
        f = r.fields.get(key)
        if f is None:
            check(f"{tag}: kv {key}", False, "missing")
            continue
        top = vt[0] if isinstance(vt, tuple) else vt
        types_ok = f.types[0] == top and (not isinstance(vt, tuple) or f.types[1] == vt[1])
        got, end = decode_parts(f.parts, 3, top)
        check(f"{tag}: kv {key}", types_ok and end == len(f.parts) and same_decoded(got, want),
              f"types {f.types}, got {got!r}, expected {want!r}")

    check(f"{tag}: {len(tensors)} tensors", len(r.tensors) == len(tensors), str(len(r.tensors)))
    offset = 0
    for t, (name, qt, ne, data) in zip(r.tensors, tensors):
        got_data = bytes(t.data.tobytes())
        ok = (t.name == name and t.tensor_type == qt and [int(x) for x in t.shape] == ne
              and t.data_offset - r.data_offset == offset and got_data == data)
        check(f"{tag}: tensor {name} {qt.name} {ne} at {offset}", ok,
              f"got {t.name} {t.tensor_type.name} {list(t.shape)} at {t.data_offset - r.data_offset}, "
              f"data {'equal' if got_data == data else 'differs'}")
        offset += pad(len(data), 64)
    q = next((t for t in r.tensors if t.name == "t.q8_0"), None)
    if q is not None:
        deq = dequantize(q.data, QT.Q8_0).reshape(-1)
        want = np.array([np.float16((b + 1) / 8).astype(np.float32) * np.float32(((b * 32 + j) * 7) % 255 - 127)
                         for b in range(4) for j in range(32)], dtype=np.float32)
        check(f"{tag}: t.q8_0 dequantizes as gguf.quants does", np.array_equal(deq, want))


# -----------------------------------------------------------------------------
# 3. Versions

def test_versions(tool, tmp, v3_path, v3_dump):
    with open(v3_path, "rb") as fp:
        data = bytearray(fp.read())
    for version in (2, 1):
        path = os.path.join(tmp, f"v{version}.gguf")
        data[4:8] = version.to_bytes(4, "little")
        with open(path, "wb") as fp:
            fp.write(data)
        rc, out, errtext = run_dump(tool, path)
        if version == 2:
            same = out == v3_dump.replace("version\t3\n", "version\t2\n", 1)
            check("v2 file: read, same keys and tensors as v3", rc == 0 and same, errtext.strip())
            try:
                ok = gguf.GGUFReader(path).fields["GGUF.version"].parts[0][0] == 2
            except Exception:  # noqa: BLE001
                ok = False
            check("v2 file: gguf.GGUFReader reads it too", ok)
        else:
            check("v1 file: refused with a message naming the file and version 1",
                  rc != 0 and path in errtext and "version 1" in errtext, f"rc {rc}, stderr {errtext.strip()!r}")


def main():
    tool = find_tool()
    if not tool:
        print("SKIP: tests/gguf_dump not built (set GGUF_DUMP or top_builddir)")
        return 77
    if not os.access(tool, os.X_OK):
        print(f"FAIL GGUF_DUMP={tool} is not an executable")
        print("0 passed, 1 failed")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        v3_path, v3_dump = test_python_writer(tool, tmp, None)
        test_python_writer(tool, tmp, 128)
        test_our_writer(tool, tmp)
        if v3_dump is not None:
            test_versions(tool, tmp, v3_path, v3_dump)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
