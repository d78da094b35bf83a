"""Shared helpers for lowbit's Python tests: where things are, and a tiny report.

    import lbtest as T
    T.require("numpy", "gguf")                 # exit 77 (skip) when a package is missing
    dump = T.tool("logits_dump")               # path of a built tool, or None
    model = T.shared("stories260K.gguf")       # path in the shared models dir, or exit 77
    T.check("logits match", err < 1e-4, f"err {err:.2e}")
    T.skip("k-quants", "no quantizer")         # a check that could not run, not counted
    sys.exit(T.finish())                       # prints "N passed, N failed"; 0, 1 or 77

Environment (set by `make check`, defaults for a run by hand from the source tree):
  top_srcdir, top_builddir  default: the repository root (the parent of tests/)
  SHARED_MODELS             default: <repo>/../shared/models
  LOWBIT                    default: <top_builddir>/lowbit
"""

import importlib
import os
import subprocess
import sys

SKIP = 77
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_passed = 0
_failed = 0
_skipped = 0


# ---------------------------------------------------------------------------
# Locations


def srcdir():
    return os.environ.get("top_srcdir") or _REPO


def builddir():
    return os.environ.get("top_builddir") or _REPO


def models_dir():
    return os.environ.get("SHARED_MODELS") or os.path.join(srcdir(), "..", "shared", "models")


def tool(name):
    """Path of tests/<name> (or the lowbit program for "lowbit") in the build dir,
    or None when it has not been built."""
    if name == "lowbit":
        path = os.environ.get("LOWBIT") or os.path.join(builddir(), "lowbit")
    else:
        path = os.path.join(builddir(), "tests", name)
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


def shared(name, required=True):
    """Path of a file in the shared models dir. Missing: exit 77 when required, else None."""
    path = os.path.join(models_dir(), name)
    if os.path.isfile(path):
        return path
    if required:
        bail(f"{path} not found (set SHARED_MODELS)")
    return None


def require(*modules):
    """Import the named Python packages or exit 77 naming the first one missing."""
    for m in modules:
        try:
            importlib.import_module(m)
        except ImportError as e:
            bail(f"python package {m} not available ({e})")


def run(cmd, timeout=600):
    """Run a command, capturing text output; never raises on a non-zero exit."""
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, errors="replace",
                          timeout=timeout)


# ---------------------------------------------------------------------------
# Report: one line per check, counts at the end (as redis's test_report).


def check(name, ok, detail=""):
    """Record one check; prints 'ok' or 'FAIL', the name and the detail. Returns ok."""
    global _passed, _failed
    ok = bool(ok)
    if ok:
        _passed += 1
    else:
        _failed += 1
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
    return ok


def skip(name, reason):
    """A check that could not run here (a missing optional tool); not counted."""
    global _skipped
    _skipped += 1
    print(f"skip {name}: {reason}", flush=True)


def note(msg):
    print(f"     {msg}", flush=True)


def bail(reason):
    """Stop the whole test: skip (77) if nothing failed yet, else report and fail."""
    print(f"SKIP: {reason}", flush=True)
    if _passed or _failed:
        sys.exit(finish())
    sys.exit(SKIP)


def finish():
    """Print the counts; return the exit status: 1 if any check failed, 77 if
    nothing ran, else 0."""
    if _skipped:
        print(f"({_skipped} skipped)", flush=True)
    print(f"{_passed} passed, {_failed} failed", flush=True)
    if _failed:
        return 1
    return 0 if _passed else SKIP
