#!/usr/bin/env python3
"""test_tokenizer_py.py — our tokenizers against the reference implementations.

1. SentencePiece: the LLaMA-2 tokenizer.model and tok512.model from
   ../shared/models are written out as vocab-only GGUF files (tokens, scores,
   token types, special ids) with the gguf package; our ids for every corpus
   string must equal sentencepiece's encode() (after BOS), and decoding them
   must give the input back. Invalid UTF-8, which sentencepiece cannot take,
   must come out as byte tokens that decode to the exact bytes.
2. Byte-level BPE: small BPE models are trained with the tokenizers package,
   one per pre-tokenizer (Llama 3 regex, Qwen2 regex, GPT-2 ByteLevel), written
   to GGUF (tokenizer.ggml.model "gpt2", tokenizer.ggml.pre, tokens, types,
   merges); our ids must equal tokenizers' encode() and decode exactly.

Runs tests/tok_dump (TOK_DUMP, else $top_builddir/tests/tok_dump). Exit 0 when
everything passes, 1 on any failure, 77 (skip) when a package or the shared
models are missing. Ends with "N passed, N failed".
"""
import os
import subprocess
import sys
import tempfile

try:
    import gguf
    import numpy as np
    import sentencepiece as spm
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
except ImportError as e:
    print("SKIP: %s (pip install gguf numpy sentencepiece tokenizers)" % e)
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.environ.get("SHARED_MODELS", os.path.join(ROOT, "..", "shared", "models"))
TOK_DUMP = os.environ.get("TOK_DUMP") or os.path.join(os.environ.get("top_builddir", ROOT), "tests", "tok_dump")

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# Strings every tokenizer is checked on. No NUL bytes (tok_dump's separator).
CORPUS = [
    "Once upon a time, there was a little girl named Lily.",
    "Hello world! Once upon a time, there was a little girl named Lily.",
    "", " ", "  ", "   ", "a", " a", "a ", "  a", "a  ", " a b  c   d    ",
    "hello   world", "hello\tworld", "tab\t\tseparated\tvalues", "line one\nline two",
    "\n", "\n\n", "\n\n\n", " \n", "\n ", "a\n\nb", "a \n b", "\r\n", "windows\r\nline\r\nendings",
    "trailing newline\n", "\t", " \t ", "mixed \t\n \r\n  whitespace",
    "0", "12", "123", "1234", "12345678", "3.14159", "1,000,000", "pi is 3.14 and e is 2.718",
    "x = 42; y = x * 2", "year 2024: 365 days", "phone +1 (555) 010-9999",
    "I'm", "DON'T", "they'll", "we've", "she'd", "you're", "it's", "IT'S", "o'clock", "'s", "'ll've",
    "rock 'n' roll", "'quoted' \"double\"",
    "naïve café résumé", "Ünïcödé", "Zürich Straße", "e\u0301 vs \u00e9", "a\u0300\u0301\u0302",
    "日本語のテキスト", "中文文本测试", "한국어 텍스트", "Привет, мир!", "Γειά σου κόσμε", "مرحبا بالعالم",
    "שלום עולם", "हिन्दी पाठ", "ภาษาไทย",
    "emoji 😀🎉👍🏽", "👨\u200d👩\u200d👧", "flags 🇫🇷🇩🇪", "❤️ hearts",
    "math ∑∫√∞ ≠ ≤", "arrows → ← ↑", "currency €£¥₹", "nbsp\u00a0here", "ideographic\u3000space",
    "em\u2003space", "zero\u200bwidth", "soft\u00adhyphen", "\u2028line sep",
    "def f(x):\n    return x ** 2\n", "if (a && b) { c++; }", "<html><body>hi</body></html>",
    "https://example.com/path?q=1&r=2", "user@example.com", "C:\\Windows\\System32",
    "!!!???...", "---===+++", "   leading spaces", "trailing spaces   ",
    "supercalifragilisticexpialidocious" * 3,
    "antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "a" * 200, "ab" * 150, " " * 40 + "x", "x" + "\n" * 20,
    "The quick brown fox jumps over the lazy dog. " * 4,
    "MiXeD CaSe WoRdS", "ALL CAPS SENTENCE.", "snake_case_name camelCaseName",
    "numbers123mixed456with789letters", "\u017f'\u017f 'ſ Kelvin \u212a", "'ſa 'LL 'Ve 'ſt",
]

# Invalid UTF-8: only our tokenizer can take these (sentencepiece and tokenizers want str).
INVALID = [b"\xff", b"abc\xfedef", b"\xc3", b"\xc3(", b"\xe2\x82", b"\xed\xa0\x80", b"\xf0\x9f\x98",
           b"ok \x80\x81\x82 end", b"\xc0\xaf overlong", b"\xf4\x90\x80\x80 too big"]

passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL: " + what)
    return ok


def run_dump(args, data):
    r = subprocess.run([TOK_DUMP] + args, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise RuntimeError("tok_dump %s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr.decode(errors="replace")))
    return r.stdout


def encode_all(vocab, texts, extra=()):
    """Our ids for each text (bytes or str)."""
    data = b"".join((t.encode() if isinstance(t, str) else t) + b"\0" for t in texts)
    out = run_dump([vocab, "--nul"] + list(extra), data).decode()
    lines = out.split("\n")[:-1]
    assert len(lines) == len(texts), "tok_dump gave %d lines for %d strings" % (len(lines), len(texts))
    return [[int(x) for x in line.split()] for line in lines]


def decode_all(vocab, seqs):
    """Our text (bytes) for each id sequence."""
    data = "".join(" ".join(map(str, s)) + "\n" for s in seqs).encode()
    out = run_dump([vocab, "--decode"], data)
    parts = out.split(b"\0")[:-1]
    assert len(parts) == len(seqs)
    return parts


# ----------------------------------------------------------------------------
# 1. SentencePiece.

def spm_gguf(model_path, out_path):
    sp = spm.SentencePieceProcessor(model_file=model_path)
    n = sp.get_piece_size()
    pieces = [sp.id_to_piece(i) for i in range(n)]
    scores = [sp.get_score(i) for i in range(n)]
    types = []
    for i in range(n):
        if sp.is_unknown(i):
            types.append(gguf.TokenType.UNKNOWN)
        elif sp.is_control(i):
            types.append(gguf.TokenType.CONTROL)
        elif sp.is_byte(i):
            types.append(gguf.TokenType.BYTE)
        elif sp.is_unused(i):
            types.append(gguf.TokenType.UNUSED)
        else:
            types.append(gguf.TokenType.NORMAL)
    w = gguf.GGUFWriter(out_path, "llama")
    w.add_tokenizer_model("llama")
    w.add_token_list(pieces)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(sp.bos_id())
    w.add_eos_token_id(sp.eos_id())
    w.add_unk_token_id(sp.unk_id())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return sp


def removes_extra_whitespace(sp):
    # Trained with remove_extra_whitespaces (llama2.c's tok512): sentencepiece
    # strips and collapses spaces before encoding; the GGUF vocabulary cannot
    # say so and llama.cpp does not do it, so such models see the normalized text.
    return sp.decode(sp.encode(" a  b ")) == "a b"


def normalize_spaces(text):
    return " ".join(t for t in text.split(" ") if t) if text.strip(" ") else ""


def test_spm(name, model_file, tmp):
    path = os.path.join(SHARED, model_file)
    if not os.path.exists(path):
        print("skip %s: %s missing" % (name, path))
        return
    vocab = os.path.join(tmp, name + ".gguf")
    sp = spm_gguf(path, vocab)
    collapse = removes_extra_whitespace(sp)
    texts = [normalize_spaces(t) if collapse else t for t in CORPUS]
    ours = encode_all(vocab, texts)
    for text, got in zip(texts, ours):
        want = [sp.bos_id()] + sp.encode(text)
        check(got == want, "%s: %r: ours %s, sentencepiece %s" % (name, text, got[:20], want[:20]))
    for text, got in zip(texts, decode_all(vocab, ours)):
        check(got == text.encode(), "%s: decode %r gives %r" % (name, text, got))
    # Without BOS the ids are the same less the first.
    nobos = encode_all(vocab, texts[:5], ["--no-bos"])
    check(nobos == [o[1:] for o in ours[:5]], "%s: --no-bos drops only BOS" % name)

    # Invalid UTF-8: byte tokens for the bad bytes, exact bytes back.
    ids = encode_all(vocab, INVALID)
    back = decode_all(vocab, ids)
    byte_ids = {i for i in range(sp.get_piece_size()) if sp.is_byte(i)}
    for raw, seq, got in zip(INVALID, ids, back):
        check(got == raw, "%s: invalid %r decodes to %r" % (name, raw, got))
        bad = [b for b in raw if b >= 0x80]
        check(len(byte_ids & set(seq)) > 0 or not bad, "%s: invalid %r: no byte tokens in %s" % (name, raw, seq))
    # The valid parts still tokenize as sentencepiece does: "abc" + bad + "def".
    seq = ids[1]
    check(seq[:1 + len(sp.encode("abc"))] == [sp.bos_id()] + sp.encode("abc"),
          "%s: text before an invalid byte: %s" % (name, seq))

    # Special tokens: plain text unless --special.
    plain = encode_all(vocab, ["<s>hi</s>"])[0]
    special = encode_all(vocab, ["<s>hi</s>"], ["--special"])[0]
    check(plain == [sp.bos_id()] + sp.encode("<s>hi</s>"), "%s: <s> as text: %s" % (name, plain))
    check(special == [sp.bos_id(), sp.bos_id()] + sp.encode("hi") + [sp.eos_id()],
          "%s: <s> parsed: %s" % (name, special))


# ----------------------------------------------------------------------------
# 2. Byte-level BPE.

TRAIN = [
    "The quick brown fox jumps over the lazy dog while the cat sleeps in the sun.",
    "Once upon a time, there was a little girl named Lily who loved to play outside.",
    "I'm sure they'll come, but we've waited and she'd rather not. DON'T WORRY, IT'S FINE.",
    "In 2023, 12345 people paid $67.89 each; 1,000,000 tokens and 3.14159 radians.",
    "def main():\n    for i in range(10):\n        print(i * 2)\n    return 0\n",
    "Zürich, café, naïve, résumé, Straße; Привет мир; Γειά σου; 日本語 中文 한국어.",
    "Emoji 😀 🎉 👍 and symbols → ∑ ≠ € £ ¥ appear sometimes.\r\nNew lines\n\n\ttabs too.",
] * 20


def bpe_tokenizer(kind):
    tok = Tokenizer(models.BPE())
    if kind == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        regex = LLAMA3_REGEX if kind == "llama-bpe" else QWEN2_REGEX
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1200, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    tok.train_from_iterator(TRAIN + CORPUS, trainer)
    if kind == "llama-bpe":
        tok.model.ignore_merges = True  # as Llama 3's tokenizer.json, and llama.cpp for "llama-bpe"
    return tok


def bpe_gguf(tok, kind, out_path):
    import json
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    tokens = [None] * len(vocab)
    for piece, i in vocab.items():
        tokens[i] = piece
    special = {a["content"] for a in spec.get("added_tokens", []) if a.get("special")}
    types = [gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens]
    w = gguf.GGUFWriter(out_path, "llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(kind)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_eos_token_id(vocab["<|endoftext|>"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_bpe(kind, tmp):
    tok = bpe_tokenizer(kind)
    vocab = os.path.join(tmp, "bpe-%s.gguf" % kind)
    bpe_gguf(tok, kind, vocab)
    texts = CORPUS + ["a<|endoftext|>b", "<|im_start|>user\nhi<|im_end|>\n"]
    ours = encode_all(vocab, texts, ["--no-bos", "--special"])
    for text, got in zip(texts, ours):
        want = tok.encode(text, add_special_tokens=False).ids
        check(got == want, "bpe %s: %r: ours %s, tokenizers %s" % (kind, text, got[:20], want[:20]))
    plain = CORPUS + INVALID
    ids = encode_all(vocab, plain, ["--no-bos"])
    for text, got in zip(plain, decode_all(vocab, ids)):
        raw = text.encode() if isinstance(text, str) else text
        check(got == raw, "bpe %s: decode %r gives %r" % (kind, raw, got))
    # Without --special, "<|endoftext|>" is text: several ordinary tokens.
    eot = tok.token_to_id("<|endoftext|>")
    plain_ids = encode_all(vocab, ["<|endoftext|>"], ["--no-bos"])[0]
    check(eot not in plain_ids and len(plain_ids) > 1, "bpe %s: <|endoftext|> as text: %s" % (kind, plain_ids))


def main():
    if not os.access(TOK_DUMP, os.X_OK):
        print("SKIP: %s not built (set TOK_DUMP or top_builddir)" % TOK_DUMP)
        return 77
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in (("llama2", "tokenizer.model"), ("tok512", "tok512.model")):
            try:
                test_spm(name, model, tmp)
            except Exception as e:  # a crash of tok_dump counts as one failure, not a traceback
                check(False, "%s: %s" % (name, e))
        for kind in ("llama-bpe", "qwen2", "gpt2"):
            try:
                test_bpe(kind, tmp)
            except Exception as e:
                check(False, "bpe %s: %s" % (kind, e))
    if passed + failed == 0:
        print("SKIP: nothing to test (shared models missing?)")
        return 77
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
