"""Restricted unpickler: malicious pickles are refused without running anything; official-style pickles load."""

from __future__ import annotations

import fractions
import os
import pickle
import pickletools
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse

from humanbench.bodymodels.safe_pickle import (
    DEFAULT_ALLOWED,
    CorruptPickleError,
    UnsafePickleError,
    UnsupportedPickleContentError,
    load_pickle_restricted,
    loads_pickle_restricted,
)
from humanbench.synthetic.official_files import Chumpy, CscMatrix, py2_pickle_bytes


class _Reduce:
    """Pickles as ``func(*args)``: the classic code-execution payload."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _touch_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


def _payloads(marker: Path) -> dict[str, bytes]:
    touch = f"touch {marker}"
    return {
        "os.system via REDUCE": b"cos\nsystem\n(S'" + touch.encode() + b"'\ntR.",
        "posix.system": pickle.dumps(_Reduce(os.system, touch)),
        "builtins.eval": pickle.dumps(_Reduce(eval, _touch_code(marker))),
        "subprocess.Popen": pickle.dumps(_Reduce(subprocess.Popen, ["touch", str(marker)])),
        "nested in a dict": pickle.dumps({"v_template": np.zeros((2, 3)), "evil": [_Reduce(eval, _touch_code(marker))]}),
        "getattr(__import__('os'), 'system')": (
            b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(S'os'\ntRS'system'\ntR(S'" + touch.encode() + b"'\ntR."
        ),
        "dotted STACK_GLOBAL off an allowed name": (
            b"\x80\x04\x8c\x05numpy\x94\x8c\x1endarray.__reduce__.__globals__\x94\x93\x94."
        ),
        "object array holding a payload": pickle.dumps(np.array([1, _Reduce(eval, _touch_code(marker))], dtype=object)),
        "copy_reg._reconstructor with a non-object base": b"ccopy_reg\n_reconstructor\n(cnumpy\ndtype\nc__builtin__\nset\nNtR.",
        "_codecs.encode with a non-latin1 codec": b"c_codecs\nencode\n(S'eJwDAAAAAAE='\nS'base64'\ntR.",
    }


def test_payload_is_live_under_plain_pickle(tmp_path):
    """Sanity check of the fixture: plain pickle really would execute it."""
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(_Reduce(eval, _touch_code(marker))))
    assert marker.exists()


@pytest.mark.parametrize("name", list(_payloads(Path("x"))))
def test_malicious_pickle_is_refused_and_not_executed(tmp_path, name):
    marker = tmp_path / "pwned"
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(_payloads(marker)[name])
    with pytest.raises(UnsafePickleError) as info:
        load_pickle_restricted(path)
    assert str(path) in str(info.value)
    assert "refused" in str(info.value)
    assert not marker.exists()


def test_refusal_names_the_global(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Reduce(subprocess.Popen, ["true"])))
    with pytest.raises(UnsafePickleError, match=r"'subprocess\.Popen'"):
        load_pickle_restricted(path)


def test_python2_pickle_needs_latin1_and_loads():
    data = py2_pickle_bytes({"v_template": np.arange(6.0).reshape(2, 3) + 0.5, "bs_style": "lbs"})
    opcodes = {op.name for op, _, _ in pickletools.genops(data)}
    assert "SHORT_BINSTRING" in opcodes or "BINSTRING" in opcodes
    assert not opcodes & {"BINUNICODE", "BINBYTES", "SHORT_BINBYTES"}
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(data)  # Python 3's default ASCII decoding fails, as with the real files
    out = loads_pickle_restricted(data)
    np.testing.assert_array_equal(out["v_template"], np.arange(6.0).reshape(2, 3) + 0.5)
    assert out["bs_style"] == "lbs"


def test_python2_numpy_scalar_loads():
    """numpy 1.x under Python 2: ``scalar(dtype('f8'), <str>)`` with the raw bytes as a latin-1 str."""
    data = (b"\x80\x02cnumpy.core.multiarray\nscalar\ncnumpy\ndtype\nU\x02f8K\x00K\x01\x87R"
            b"(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tbU\x08" + struct.pack("<d", 1.5) + b"\x86R.")
    value = loads_pickle_restricted(data)
    assert value == 1.5 and value.dtype == np.float64


def test_chumpy_and_sparse_become_arrays_without_chumpy():
    dense = np.array([[0.0, 2.0, 0.0], [1.0, 0.0, 3.0]])
    data = py2_pickle_bytes({"shapedirs": Chumpy(np.ones((4, 3, 2))), "J_regressor": CscMatrix(dense),
                             "f": np.array([[0, 1, 2]], dtype=np.uint32), "tags": {"a", "b"}})
    out = loads_pickle_restricted(data)
    np.testing.assert_array_equal(out["shapedirs"], np.ones((4, 3, 2)))
    np.testing.assert_array_equal(out["J_regressor"], dense)
    assert out["f"].dtype == np.uint32 and out["tags"] == {"a", "b"}
    matrix = loads_pickle_restricted(data, sparse="scipy")["J_regressor"]
    assert scipy.sparse.issparse(matrix) and matrix.format == "csc"
    np.testing.assert_array_equal(matrix.toarray(), dense)
    assert "chumpy" not in sys.modules


def test_protocol0_reconstructor_chumpy_object():
    """Python 2 protocol 0: ``copy_reg._reconstructor(chumpy.ch.Ch, __builtin__.object, None)``."""
    data = (
        b"(dp0\nS'x'\np1\nccopy_reg\n_reconstructor\np2\n(cchumpy.ch\nCh\np3\nc__builtin__\nobject\np4\nNtp5\n"
        b"Rp6\n(dp7\nS'x'\np8\n(lp9\nF1.5\naF2.5\nasS'_itr'\np10\nNsbs."
    )
    np.testing.assert_array_equal(loads_pickle_restricted(data)["x"], [1.5, 2.5])


def test_chumpy_reordering_nodes_are_evaluated():
    base = np.arange(12.0).reshape(3, 4)
    select = py2_pickle_bytes(0)[:2] + (
        b"cchumpy.reordering\nSelect\n)\x81}("
        + py2_pickle_bytes("a")[2:-1] + py2_pickle_bytes(Chumpy(base))[2:-1]
        + py2_pickle_bytes("idxs")[2:-1] + py2_pickle_bytes(np.array([0, 5, 11]))[2:-1]
        + py2_pickle_bytes("preferred_shape")[2:-1] + py2_pickle_bytes((3, 1))[2:-1]
        + b"ub."
    )
    np.testing.assert_array_equal(loads_pickle_restricted(select), [[0.0], [5.0], [11.0]])
    reshape = py2_pickle_bytes(0)[:2] + (
        b"cchumpy.reordering\nReshape\n)\x81}("
        + py2_pickle_bytes("a")[2:-1] + py2_pickle_bytes(Chumpy(base))[2:-1]
        + py2_pickle_bytes("newshape")[2:-1] + py2_pickle_bytes((4, 3))[2:-1]
        + b"ub."
    )
    np.testing.assert_array_equal(loads_pickle_restricted(reshape), base.reshape(4, 3))


def test_unsupported_chumpy_expression_is_refused_clearly():
    data = b"\x80\x02cchumpy.ch_ops\nadd\n)\x81}(U\x01aK\x01ub."
    with pytest.raises(UnsupportedPickleContentError, match=r"chumpy\.ch_ops\.add"):
        loads_pickle_restricted(data, source="weird.pkl")


def test_invalid_sparse_state_is_refused():
    bad = scipy.sparse.csc_matrix(np.eye(3))
    bad.indices = np.array([0, 1, 7], dtype=np.int32)  # row 7 does not exist
    with pytest.raises(UnsupportedPickleContentError, match="out of range"):
        loads_pickle_restricted(pickle.dumps(bad, protocol=2))


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_python3_data_pickles_load(protocol):
    obj = {"poses": [np.random.default_rng(0).normal(size=(5, 72)).astype(np.float32)], "genders": ["m", "f"],
           "raw": b"\x00\xff", "csr": scipy.sparse.csr_matrix(np.array([[0.0, 1.0], [2.0, 0.0]]))}
    out = loads_pickle_restricted(pickle.dumps(obj, protocol=protocol))
    np.testing.assert_array_equal(out["poses"][0], obj["poses"][0])
    assert out["genders"] == ["m", "f"] and out["raw"] == b"\x00\xff"
    np.testing.assert_array_equal(out["csr"], [[0.0, 1.0], [2.0, 0.0]])


def test_allow_list_can_be_extended_with_vetted_objects():
    data = pickle.dumps({"ratio": fractions.Fraction(1, 3)})
    with pytest.raises(UnsafePickleError, match="fractions.Fraction"):
        loads_pickle_restricted(data)
    out = loads_pickle_restricted(data, allow={("fractions", "Fraction"): fractions.Fraction})
    assert out["ratio"] == fractions.Fraction(1, 3)
    assert ("fractions", "Fraction") not in DEFAULT_ALLOWED


def test_truncated_and_garbage_files_give_a_clear_error(tmp_path):
    data = py2_pickle_bytes({"v_template": Chumpy(np.ones((50, 3))), "f": np.zeros((4, 3), np.uint32)})
    path = tmp_path / "SMPL_MALE.pkl"
    for cut in (0, 1, 10, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(CorruptPickleError) as info:
            load_pickle_restricted(path, expected="an SMPL model pickle")
        message = str(info.value)
        assert str(path) in message and "an SMPL model pickle" in message and "truncated" in message
    path.write_bytes(b"PK\x03\x04 this is a zip, not a pickle")
    with pytest.raises(CorruptPickleError, match="SMPL_MALE.pkl"):
        load_pickle_restricted(path)
