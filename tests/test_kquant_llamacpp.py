"""Our k-quant quantizers against llama.cpp's: the same F32 weights must give the same bytes.

llama.cpp is not part of the repo; point LLAMA_QUANTIZE at its llama-quantize binary
(bench/compare.py builds one under /tmp). Without it this test is skipped (exit 77).
For each k-quant type, a miniature model is quantized with `llama-quantize --pure TYPE`,
and every tensor of that type is quantized again from the same F32 rows with
`tests/types_dump quantize` (our reference quantizer); the blocks must be identical.
"""
import os
import subprocess
import sys
import tempfile

import lbtest

lbtest.require("numpy", "gguf")
import gguf  # noqa: E402
import numpy as np  # noqa: E402

llama_quantize = os.environ.get("LLAMA_QUANTIZE")
if not llama_quantize or not os.access(llama_quantize, os.X_OK):
    lbtest.bail("LLAMA_QUANTIZE is not set to llama.cpp's llama-quantize")
types_dump = lbtest.tool("types_dump") or lbtest.bail("tests/types_dump is not built")
lbtest.shared("tokenizer.model")  # make_test_model.py reads the LLaMA-2 vocabulary from it

here = os.path.dirname(os.path.abspath(__file__))
with tempfile.TemporaryDirectory() as tmp:
    src = os.path.join(tmp, "f32.gguf")
    subprocess.run(["python3", os.path.join(here, "make_test_model.py"), "llama-quant", "F32", src], check=True,
                   stdout=subprocess.DEVNULL)
    source = {t.name: np.asarray(t.data, dtype=np.float32) for t in gguf.GGUFReader(src).tensors}
    for qt in ("Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"):
        out = os.path.join(tmp, f"{qt}.gguf")
        subprocess.run([llama_quantize, "--pure", src, out, qt], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        block_bytes = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[qt]][1]
        same = differ = 0
        for t in gguf.GGUFReader(out).tensors:
            if t.tensor_type.name != qt:
                continue
            source[t.name].tofile(os.path.join(tmp, "x.f32"))
            subprocess.run([types_dump, "quantize", qt, os.path.join(tmp, "x.f32"), os.path.join(tmp, "y.bin")],
                           check=True)
            ours = np.fromfile(os.path.join(tmp, "y.bin"), dtype=np.uint8).reshape(-1, block_bytes)
            theirs = np.asarray(t.data).view(np.uint8).reshape(-1, block_bytes)
            equal = (ours == theirs).all(axis=1)
            same += int(equal.sum())
            differ += int((~equal).sum())
        lbtest.check(f"{qt}: blocks identical to llama-quantize --pure ({same} same, {differ} differ)",
                     same > 0 and differ == 0)
sys.exit(lbtest.finish())
