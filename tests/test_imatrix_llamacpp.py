"""Importance-weighted quantization against llama.cpp: one imatrix file, the same bytes.

A miniature llama model (tests/make_test_model.py llama-quant: rows of 256 and 768, so every
k-quant fits) is calibrated by `lowbit quantize --calib ... --imatrix-out`, which writes the
importance matrix in llama.cpp's GGUF imatrix format. Then for each type llama.cpp weighs by
importance (Q4_0, Q4_1, Q5_0, Q5_1, Q2_K .. Q6_K):
  - `llama-quantize --pure --imatrix FILE` and `lowbit quantize --imatrix FILE` with a pure
    profile must write identical bytes for every tensor;
  - lowbit with `importance: calibration` straight from the text (no file) must write the
    same bytes again (the in-memory path equals the file path);
  - the importance must matter: without it at least one tensor differs.
The shipped q4_k_m-imatrix profile must equal `llama-quantize --imatrix ... Q4_K_M` (the mix's
rules with an imatrix), quantize.imatrix.* keys included.
When llama.cpp's llama-imatrix is built, its own file for the same model and text is read by
lowbit and must give llama-quantize's bytes too (our reader of its output).

llama.cpp is found in $LLAMA_BIN (default: the build under /tmp/llamacpp); without
llama-quantize the test is skipped (exit 77) and says so.
"""
import os
import subprocess
import sys
import tempfile

import lbtest as T

T.require("numpy", "gguf", "sentencepiece")
import gguf  # noqa: E402
import numpy as np  # noqa: E402

LLAMA_BIN = os.environ.get("LLAMA_BIN") or "/tmp/llamacpp/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin"
llama_quantize = os.path.join(LLAMA_BIN, "llama-quantize")
llama_imatrix = os.path.join(LLAMA_BIN, "llama-imatrix")
if not os.access(llama_quantize, os.X_OK):
    T.bail(f"no llama-quantize in {LLAMA_BIN} (set LLAMA_BIN to a llama.cpp build/bin)")
lowbit = T.tool("lowbit") or T.bail("lowbit is not built")
T.shared("tokenizer.model")  # make_test_model.py reads the LLaMA-2 vocabulary from it

TEXT = """Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her
friends. One day, she saw a big red ball under a tree. She ran to the ball and picked it up. It was shiny and new.
Lily's mom said, "Lily, you can play with the ball, but you must share it with your friends." Lily nodded and
smiled. She threw the ball to her friend Tom. Tom caught the ball and laughed. They played all day until the sun
went down. One day, a little boy named Tim went to the store with his dad. He wanted to buy a toy car. His dad
said, "Tim, you have to be good and wait." Tim waited and waited. At last, his dad bought him a blue car.
"""

TYPES = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K")


def tensors(path):
    return {t.name: (t.tensor_type.name, np.asarray(t.data).tobytes()) for t in gguf.GGUFReader(path).tensors}


def profile(tmp, qtype, importance):
    path = os.path.join(tmp, f"{qtype}-{importance}.yaml")
    with open(path, "w") as f:
        f.write(f"name: t\nmethod: {qtype.lower()}\npure: true\nimportance: {importance}\n")
    return path


def quantize(args):
    r = subprocess.run([lowbit, "quantize", "-q"] + args, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"lowbit quantize {' '.join(args)}: {r.stderr.strip()}")


def compare(ours, theirs):
    """(identical tensors, differing tensor names) over llama.cpp's file's tensors."""
    same, differ = 0, []
    for name, (qt, data) in theirs.items():
        if name in ours and ours[name] == (qt, data):
            same += 1
        else:
            differ.append(name)
    return same, differ


with tempfile.TemporaryDirectory() as tmp:
    src = os.path.join(tmp, "f32.gguf")
    subprocess.run([sys.executable, os.path.join(T.srcdir(), "tests", "make_test_model.py"), "llama-quant", "F32",
                    src], check=True, stdout=subprocess.DEVNULL)
    text = os.path.join(tmp, "calib.txt")
    with open(text, "w") as f:
        f.write(TEXT * 4)
    imatrix = os.path.join(tmp, "imatrix.gguf")
    calib = ["--calib", text, "--calib-ctx", "64", "--calib-samples", "6"]

    # The file lowbit writes is one llama.cpp's reader takes: entries and counts.
    quantize(["-m", src, "-o", os.path.join(tmp, "first.gguf"), "--profile", profile(tmp, "Q4_K", "calibration"),
              "--imatrix-out", imatrix] + calib)
    im = gguf.GGUFReader(imatrix)
    names = [t.name for t in im.tensors]
    counts = {t.name: float(np.asarray(t.data).ravel()[0]) for t in im.tensors if t.name.endswith(".counts")}
    entries = [n[: -len(".in_sum2")] for n in names[0::2]]
    T.check("imatrix file: llama.cpp's layout (general.type imatrix, NAME.in_sum2 then NAME.counts, by name)",
            bytes(im.fields["general.type"].parts[-1]).decode() == "imatrix" and entries == sorted(entries) and
            names[1::2] == [e + ".counts" for e in entries] and len(entries) == 7 * 2, f"{len(names)} tensors")
    T.check("imatrix file: every matrix saw 6 chunks x 64 tokens", set(counts.values()) == {384.0},
            f"{sorted(set(counts.values()))}")

    for qt in TYPES:
        theirs_path = os.path.join(tmp, f"llama-{qt}.gguf")
        r = subprocess.run([llama_quantize, "--pure", "--imatrix", imatrix, src, theirs_path, qt],
                           capture_output=True, text=True)
        if r.returncode:
            T.check(f"{qt}: llama-quantize --imatrix runs", False, r.stderr.strip()[-300:])
            continue
        theirs = tensors(theirs_path)
        ours_path = os.path.join(tmp, f"lowbit-{qt}.gguf")
        quantize(["-m", src, "-o", ours_path, "--profile", profile(tmp, qt, "none"), "--imatrix", imatrix])
        same, differ = compare(tensors(ours_path), theirs)
        n_typed = sum(1 for v in theirs.values() if v[0] == qt)
        T.check(f"{qt}: lowbit --imatrix FILE equals llama-quantize --imatrix ({same} tensors, {n_typed} {qt})",
                not differ and n_typed >= 7 * 2, f"differ: {differ[:4]}")

        if qt not in ("Q4_0", "Q4_K"):  # the two in-memory checks below are slow; two types show them
            continue
        direct = os.path.join(tmp, f"direct-{qt}.gguf")
        quantize(["-m", src, "-o", direct, "--profile", profile(tmp, qt, "calibration")] + calib)
        same, differ = compare(tensors(direct), theirs)
        T.check(f"{qt}: importance: calibration (collected in memory) gives the same bytes", not differ,
                f"differ: {differ[:4]}")

        plain = os.path.join(tmp, f"plain-{qt}.gguf")
        quantize(["-m", src, "-o", plain, "--profile", profile(tmp, qt, "none")])
        same, differ = compare(tensors(plain), theirs)
        T.check(f"{qt}: without importance the bytes differ ({len(differ)} tensors)", len(differ) > 0)

    # A mix: llama.cpp's Q4_K_M rules with the importance matrix, and its quantize.imatrix.* keys.
    theirs_path, ours_path = os.path.join(tmp, "llama-q4_k_m.gguf"), os.path.join(tmp, "lowbit-q4_k_m.gguf")
    subprocess.run([llama_quantize, "--imatrix", imatrix, src, theirs_path, "Q4_K_M"], check=True,
                   capture_output=True)
    quantize(["-m", src, "-o", ours_path, "--profile", os.path.join(T.srcdir(), "profiles", "q4_k_m-imatrix.yaml"),
              "--imatrix", imatrix])
    same, differ = compare(tensors(ours_path), tensors(theirs_path))
    T.check(f"Q4_K_M mix: profile q4_k_m-imatrix equals llama-quantize --imatrix Q4_K_M ({same} tensors)",
            not differ, f"differ: {differ[:4]}")

    def imatrix_keys(path):
        out = {}
        for k, f in gguf.GGUFReader(path).fields.items():
            if k.startswith("quantize.imatrix."):
                v = f.parts[-1]
                out[k] = (f.types[0].name, bytes(v).decode() if f.types[0] == gguf.GGUFValueType.STRING else int(v[0]))
        return out
    T.check("quantize.imatrix.* keys as llama-quantize writes them", imatrix_keys(ours_path) == imatrix_keys(theirs_path),
            f"{imatrix_keys(ours_path)} vs {imatrix_keys(theirs_path)}")

    if os.access(llama_imatrix, os.X_OK):
        theirs_im = os.path.join(tmp, "llama-imatrix.gguf")
        r = subprocess.run([llama_imatrix, "-m", src, "-f", text, "-o", theirs_im, "-c", "64", "-t", "2",
                            "--chunks", "6"], capture_output=True, text=True)
        if r.returncode or not os.path.exists(theirs_im):
            T.check("llama-imatrix runs", False, r.stderr.strip()[-300:])
        else:
            for qt in ("Q4_0", "Q4_K"):
                theirs_path = os.path.join(tmp, f"llama-im-{qt}.gguf")
                subprocess.run([llama_quantize, "--pure", "--imatrix", theirs_im, src, theirs_path, qt], check=True,
                               capture_output=True)
                ours_path = os.path.join(tmp, f"lowbit-im-{qt}.gguf")
                quantize(["-m", src, "-o", ours_path, "--profile", profile(tmp, qt, "none"), "--imatrix", theirs_im])
                same, differ = compare(tensors(ours_path), tensors(theirs_path))
                T.check(f"{qt}: with llama-imatrix's own file, lowbit equals llama-quantize ({same} tensors)",
                        not differ, f"differ: {differ[:4]}")
    else:
        T.skip("lowbit reads llama-imatrix's file", f"no llama-imatrix in {LLAMA_BIN}")
sys.exit(T.finish())
