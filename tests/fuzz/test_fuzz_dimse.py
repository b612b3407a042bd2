"""Fuzzing the DIMSE command decoder: `DimseDecodeError` or a message, nothing else."""

from __future__ import annotations

import struct
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiomove.proto import dimse
from tests.proto.test_dimse import GOLDEN

from .mutations import mutated
from .targets import check_command

GOLDEN_WIRES = [wire for wire, _ in GOLDEN]
KNOWN = sorted(dimse.COMMAND_ELEMENTS)
_SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large]


def element(number: int, value: bytes, length: int | None = None) -> bytes:
    """(0000,number) in implicit VR LE, its length field possibly lying."""
    return struct.pack("<HHI", 0, number, len(value) if length is None else length) + value


def command_set(body: bytes, group_length: int | None = None) -> bytes:
    size = len(body) if group_length is None else group_length
    return element(0x0000, struct.pack("<I", size)) + body


_VALUES = st.one_of(
    st.binary(max_size=70),
    st.sampled_from([0x0001, 0x0030, 0x8021, 0x0101, 0xFF00, 0xFFFF]).map(
        lambda v: struct.pack("<H", v)
    ),
    st.sampled_from([b"1.2.840.10008.1.1\x00", b"DEST", b"\xff\xfe", b" \x00", b""]),
)
ELEMENTS = st.builds(
    element,
    st.sampled_from(KNOWN) | st.integers(0, 0xFFFF),
    _VALUES,
    st.none() | st.sampled_from([0, 1, 0xFFFF, 0xFFFF_FFFF]) | st.integers(0, 200),
)
VALID = st.sampled_from(GOLDEN_WIRES)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_arbitrary_bytes(data: bytes) -> None:
    check_command(data)


@settings(max_examples=300)
@given(
    st.lists(ELEMENTS, max_size=12).map(b"".join),
    st.none() | st.integers(0, 0xFFFF_FFFF),
)
def test_arbitrary_group_0000_element_streams(body: bytes, group_length: int | None) -> None:
    check_command(command_set(body, group_length))


@settings(max_examples=200, suppress_health_check=_SLOW)
@given(st.data())
def test_mutated_golden_commands(data: st.DataObject) -> None:
    check_command(data.draw(mutated(data.draw(VALID))))


@settings(max_examples=200)
@given(VALID, st.lists(ELEMENTS, min_size=1, max_size=3), st.booleans())
def test_golden_commands_with_extra_elements(wire: bytes, extra: list[bytes], fix: bool) -> None:
    body = wire[12:] + b"".join(extra)
    check_command(command_set(body, None if fix else len(wire) - 12))


@pytest.mark.parametrize("length", [0xFFFF_FFFF, 0x7FFF_FFFF, 1 << 30])
def test_huge_declared_lengths_do_not_allocate(length: int) -> None:
    cases = [
        command_set(element(dimse.COMMAND_FIELD, b"\x30\x00", length)),  # element overruns
        command_set(element(dimse.COMMAND_FIELD, b"\x30\x00"), length),  # group length lies
        element(dimse.AFFECTED_SOP_CLASS_UID, b"1.2", length) * 2,  # no group length
    ]
    tracemalloc.start()
    try:
        for case in cases:
            with pytest.raises(dimse.DimseDecodeError):
                dimse.decode_command(case)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 16
