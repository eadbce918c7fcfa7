"""The C++ core's own tests (cpp/tests) under AddressSanitizer + UndefinedBehaviorSanitizer, and the env
pool's under ThreadSanitizer."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is needed to build the C++ tests")
def test_cpp_core_under_asan_and_ubsan(tmp_path):
    proc = subprocess.run(["bash", str(ROOT / "cpp/tests/run_sanitized.sh"), str(tmp_path / "asan")],
                          cwd=ROOT, capture_output=True, text=True, timeout=1200)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "100% tests passed" in out
    assert "AddressSanitizer" not in out and "ThreadSanitizer" not in out and "runtime error" not in out
    assert out.rstrip().endswith("0 failed")  # the TSan run of the env pool test comes last
