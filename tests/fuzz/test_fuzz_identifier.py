"""Received identifiers (C-FIND/C-MOVE response data sets): a deflated one cannot make us
allocate more than `MAX_INFLATED_IDENTIFIER`, whatever it claims to hold."""

from __future__ import annotations

import tracemalloc
import zlib

import pytest
from pydicom import Dataset

from aiomove.query import MAX_INFLATED_IDENTIFIER, QueryError, decode_identifier, encode_identifier

DEFLATED = "1.2.840.10008.1.2.1.99"  # Deflated Explicit VR Little Endian (PS3.5 A.5)


def deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


def test_deflate_bomb_is_refused_without_inflating_it() -> None:
    """Regression: 64 KiB of deflate inflating to 64 MiB used to be inflated whole (and a
    16 MiB identifier, the most a response may carry, to about 16 GiB)."""
    bomb = deflate(bytes(64 << 20))
    assert len(bomb) < 1 << 17
    tracemalloc.start()
    try:
        with pytest.raises(QueryError, match="inflates beyond"):
            decode_identifier(bomb, DEFLATED)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * MAX_INFLATED_IDENTIFIER + (1 << 20)


def test_truncated_deflate_stream_is_refused() -> None:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = "1.2.3"
    wire = encode_identifier(ds, DEFLATED)
    assert decode_identifier(wire, DEFLATED) == ds
    with pytest.raises(QueryError, match="truncated"):
        decode_identifier(wire[:-3], DEFLATED)
