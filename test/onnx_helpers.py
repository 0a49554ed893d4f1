"""The onnxruntime tests run wherever the test extra is installed, and always in CI.

``pip install -e ".[test]"`` (what ``make setup`` and CI run) brings onnx and onnxruntime; a
checkout without them skips these tests with that instruction, except under ``CI`` where a
missing package is a failure, so the parity tests can never be skipped silently there.
"""
import os

import pytest

HINT = 'not installed: pip install -e ".[test]" (or ".[onnx]")'


def require_onnxruntime() -> None:
    """Call at module level of a test file that needs onnx + onnxruntime."""
    if os.environ.get('CI'):
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        return
    pytest.importorskip('onnxruntime', reason=f'onnxruntime {HINT}')
    pytest.importorskip('onnx', reason=f'onnx {HINT}')
