"""The event record is defined once in C++ and mirrored in numpy: both must agree field by field."""

import io

import numpy as np
import pytest

from trader import _core
from trader.data.events import EVENT_DTYPE, EventFlag, EventKind


def test_dtype_matches_cpp_field_by_field():
    cpp = _core.EVENT_DTYPE
    assert cpp.itemsize == EVENT_DTYPE.itemsize == _core.EVENT_SIZE == 64
    assert cpp.names == EVENT_DTYPE.names
    for name in EVENT_DTYPE.names:
        py_t, py_off = EVENT_DTYPE.fields[name][:2]
        cpp_t, cpp_off = cpp.fields[name][:2]
        assert py_off == cpp_off, name
        assert py_t == cpp_t, name


def test_kinds_and_flags_match_cpp():
    assert {k.name: int(k) for k in EventKind} == dict(_core.EVENT_KINDS)
    assert {f.name: int(f) for f in EventFlag} == dict(_core.EVENT_FLAGS)


def test_npy_header_descr_is_what_the_cpp_reader_expects():
    buf = io.BytesIO()
    np.save(buf, np.zeros(3, dtype=EVENT_DTYPE))
    header = buf.getvalue()[:256].decode("latin1")
    assert f"'descr': {_core.EVENT_NPY_DESCR}" in header


def test_wrong_dtype_is_refused_not_converted():
    wrong = np.zeros(4, dtype=[(f"f{i}", "<i8") for i in range(8)])  # 64 bytes, other fields
    with pytest.raises(TypeError):
        _core.replay(wrong)
