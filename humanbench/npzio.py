"""Deterministic ``.npz`` writing: uncompressed, sorted members, fixed timestamps, no pickles.

``numpy.savez`` stamps the current time into every zip member, so the same arrays give
different bytes on every call; humanbench's shards and prediction files must not.
"""

from __future__ import annotations

import zipfile
from typing import BinaryIO, Mapping

import numpy as np

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_npz(file: str | BinaryIO, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``file`` (a path or a binary file object) as a byte-deterministic npz."""
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name in sorted(arrays):
            array = np.asarray(arrays[name])
            if not array.flags.c_contiguous:  # a Fortran-ordered copy would change the header bytes
                array = np.array(array, order="C")
            with zf.open(zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH), "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
