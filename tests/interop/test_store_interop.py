"""The Storage SCP against DCMTK: storescu sends, storescp and dcmconv are the references.

- negotiation: for every `+x?` preference, the transfer syntax order our acceptor uses is the
  one DCMTK storescp uses (found by proposing everything, removing what was chosen, again);
- storescu sends pydicom's bundled test files in every kind of transfer syntax: with `+xa` each
  is stored with the received data set unchanged, with the default preference the compressed
  ones are refused by negotiation;
- the file meta matches DCMTK storescp's, and the data set what storescp `+B` writes;
- re-encoding (+t?, +g, -g, -e, -u, +p, +td/+cl) gives the data set bytes `dcmconv` writes;
- the modality prefixes and Storage SOP classes are DCMTK's (libdcmdata, through ctypes).
"""

from __future__ import annotations

import ctypes
import struct
from pathlib import Path

import anyio
import pydicom
import pytest
from pydicom.data.data_manager import DATA_ROOT

from aiomove.association import Peer, connect
from aiomove.modality import MODALITY_PREFIXES, UNKNOWN, modality_prefix
from aiomove.proto import uids
from aiomove.storage import FileSink, OutputOptions, StoreRequest
from aiomove.transfer import Prefer, accepted_transfer_syntaxes, storage_sop_classes
from tests.peers import dcmtk, storescp
from tests.store_util import CT_IMAGE, storage_scp

pytestmark = pytest.mark.interop

TEST_FILES = Path(DATA_ROOT) / "test_files"

#: Every transfer syntax of PS3.5 Annex A that a DICOM peer may propose (and a few more).
EVERY_SYNTAX = (
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.5",
    *(f"1.2.840.10008.1.2.4.{n}" for n in (50, 51, 57, 70, 80, 81, 90, 91, 92, 93)),
    *(f"1.2.840.10008.1.2.4.{n}" for n in range(100, 109)),
)


def data_set_part(raw: bytes) -> bytes:
    """The bytes after the file meta group (PS3.10 §7.1)."""
    assert raw[128:132] == b"DICM"
    (group_length,) = struct.unpack_from("<I", raw, 140)
    return raw[144 + group_length :]


async def acceptor_order(port: int, abstract_syntax: str) -> list[str]:
    """The acceptor's preference: propose all, note the choice, propose the rest, again."""
    left = list(EVERY_SYNTAX)
    chosen: list[str] = []
    while left:
        async with connect(Peer("127.0.0.1", port), contexts=[(abstract_syntax, left)]) as assoc:
            if not assoc.contexts:
                break
            syntax = assoc.contexts[0].transfer_syntax
        chosen.append(syntax)
        left.remove(syntax)
    return chosen


# --- negotiation ----------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("prefer", list(Prefer), ids=lambda p: p.value)
async def test_preference_order_is_storescps(prefer: Prefer, tmp_path: Path) -> None:
    flags = [] if prefer is Prefer.UNCOMPRESSED else [prefer.value]
    with storescp(*flags) as port:
        dcmtk_storage = await acceptor_order(port, CT_IMAGE)
        dcmtk_verification = await acceptor_order(port, uids.VERIFICATION)
    async with storage_scp(FileSink(tmp_path), prefer) as port:
        ours_storage = await acceptor_order(port, CT_IMAGE)
        ours_verification = await acceptor_order(port, uids.VERIFICATION)
    assert dcmtk_storage == list(accepted_transfer_syntaxes(prefer))
    assert ours_storage == dcmtk_storage
    assert ours_verification == dcmtk_verification == dcmtk_storage


# --- storescu -> aiomove ----------------------------------------------------------------------

#: Bundled pydicom test file -> the storescu option that proposes its transfer syntax.
SENT_FILES = {
    "CT_small.dcm": ["-x="],  # explicit VR little endian
    "MR_small_implicit.dcm": ["-xi"],
    "MR_small_bigendian.dcm": ["-xb"],
    "rtplan.dcm": ["-xi"],  # implicit, with nested sequences
    "image_dfl.dcm": ["-xd"],  # deflated
    "MR_small_RLE.dcm": ["-xr"],
    "SC_rgb_jpeg_gdcm.dcm": ["-xs"],  # JPEG lossless SV1
    "SC_rgb_dcmtk_+eb+cr.dcm": ["-xy"],  # JPEG baseline
    "JPEG-lossy.dcm": ["-xx"],  # JPEG extended
    "MR_small_jp2klossless.dcm": ["-xv"],
    "JPEG2000.dcm": ["-xw"],
    "MR_small_jpeg_ls_lossless.dcm": ["-xt"],
    "SC_rgb_jls_lossy_line.dcm": ["-xu"],
}
COMPRESSED = [
    name for name, flags in SENT_FILES.items() if flags[0] not in ("-x=", "-xi", "-xb", "-xd")
]


async def storescu(port: int, path: Path, *flags: str) -> tuple[int, str]:
    result = await anyio.run_process(
        [dcmtk("storescu"), *flags, "-aec", "STORESCP", "127.0.0.1", str(port), str(path)],
        check=False,
    )
    return result.returncode, result.stdout.decode() + result.stderr.decode()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("name", list(SENT_FILES))
async def test_storescu_file_is_stored_unchanged_with_accept_all(name: str, tmp_path: Path) -> None:
    source = TEST_FILES / name
    original = pydicom.dcmread(source)
    ours_dir, bits_dir = tmp_path / "ours", tmp_path / "storescp+B"
    ours_dir.mkdir()
    bits_dir.mkdir()
    async with storage_scp(FileSink(ours_dir), Prefer.ACCEPT_ALL) as port:
        code, output = await storescu(port, source, *SENT_FILES[name])
    assert code == 0, output
    with storescp("+xa", "+B", out_dir=bits_dir) as port:
        code, output = await storescu(port, source, *SENT_FILES[name])
    assert code == 0, output
    expected_name = f"{modality_prefix(original.SOPClassUID)}.{original.SOPInstanceUID}"
    [stored] = list(ours_dir.iterdir())
    [reference] = list(bits_dir.iterdir())
    assert stored.name == reference.name == expected_name
    back = pydicom.dcmread(stored)
    assert back.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert back.file_meta.SourceApplicationEntityTitle == "STORESCU"
    # exactly the bytes storescu sent, which storescp +B writes as received...
    assert data_set_part(stored.read_bytes()) == data_set_part(reference.read_bytes())
    # ...and the same data set as the file (storescu re-encodes: lengths, trailing padding)
    assert _without_padding(back) == _without_padding(original)


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def _without_padding(ds: pydicom.Dataset) -> list[tuple[int, bytes | str]]:
    return [(e.tag, repr(e.value)) for e in ds if e.tag != 0xFFFCFFFC]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("name", COMPRESSED)
async def test_compressed_file_is_refused_by_default(name: str, tmp_path: Path) -> None:
    async with storage_scp(FileSink(tmp_path)) as port:
        code, output = await storescu(port, TEST_FILES / name, *SENT_FILES[name])
    assert code != 0
    assert "unable to convert" in output
    assert _names(tmp_path) == []


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_file_meta_and_data_set_match_storescp(tmp_path: Path) -> None:
    source = TEST_FILES / "CT_small.dcm"
    ours_dir, normal_dir, bit_dir = tmp_path / "ours", tmp_path / "dcmtk", tmp_path / "dcmtk+B"
    for directory in (ours_dir, normal_dir, bit_dir):
        directory.mkdir()
    async with storage_scp(FileSink(ours_dir)) as port:
        assert (await storescu(port, source))[0] == 0
    for args, directory in (((), normal_dir), (("+B",), bit_dir)):
        with storescp(*args, out_dir=directory) as port:
            assert (await storescu(port, source))[0] == 0
    [ours] = list(ours_dir.iterdir())
    [normal] = list(normal_dir.iterdir())
    [bits] = list(bit_dir.iterdir())
    assert ours.name == normal.name == bits.name
    ours_meta = pydicom.dcmread(ours).file_meta
    dcmtk_meta = pydicom.dcmread(normal).file_meta
    assert list(ours_meta.keys()) == list(dcmtk_meta.keys())
    for keyword in (
        "FileMetaInformationVersion",
        "MediaStorageSOPClassUID",
        "MediaStorageSOPInstanceUID",
        "TransferSyntaxUID",
        "SourceApplicationEntityTitle",
    ):
        assert ours_meta[keyword].value == dcmtk_meta[keyword].value, keyword
    assert data_set_part(ours.read_bytes()) == data_set_part(bits.read_bytes())


# --- re-encoding against dcmconv ---------------------------------------------------------------

REENCODINGS = [
    (["+te"], OutputOptions(transfer_syntax=uids.EXPLICIT_VR_LE)),
    (["+tb"], OutputOptions(transfer_syntax=uids.EXPLICIT_VR_BE)),
    (["+ti"], OutputOptions(transfer_syntax=uids.IMPLICIT_VR_LE)),
    (["+td"], OutputOptions(transfer_syntax=uids.DEFLATED_EXPLICIT_VR_LE)),
    (
        ["+td", "+cl", "1"],
        OutputOptions(transfer_syntax=uids.DEFLATED_EXPLICIT_VR_LE, compression_level=1),
    ),
    (["+g"], OutputOptions(group_length="create")),
    (["-g"], OutputOptions(group_length="remove")),
    (["-e"], OutputOptions(explicit_length=False)),
    (["-u"], OutputOptions(new_vr=False)),
    (["+p", "256", "16"], OutputOptions(padding=(256, 16))),
]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("name", ["CT_small.dcm", "rtplan.dcm", "MR_small_bigendian.dcm"])
@pytest.mark.parametrize(
    ("flags", "options"), REENCODINGS, ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
async def test_reencoding_matches_dcmconv(
    name: str, flags: list[str], options: OutputOptions, tmp_path: Path
) -> None:
    source = TEST_FILES / name
    raw = source.read_bytes()
    ds = pydicom.dcmread(source, stop_before_pixels=True)
    request = StoreRequest(
        message_id=1,
        sop_class_uid=str(ds.SOPClassUID),
        sop_instance_uid=str(ds.SOPInstanceUID),
        transfer_syntax=str(ds.file_meta.TransferSyntaxUID),
        calling_ae_title="STORESCU",
        called_ae_title="STORESCP",
        move_originator_ae_title=None,
        move_originator_message_id=None,
        assoc_id=0,
        peer="test",
        priority=0,
    )

    async def chunks():
        yield data_set_part(raw)

    result = await FileSink(tmp_path, options=options).store(request, chunks())
    assert result.status == 0
    assert result.path is not None
    # movescu's default is -p (padding removed); dcmconv's is -p= (kept)
    reference = tmp_path / "dcmconv.dcm"
    padding = [] if "+p" in flags else ["-p"]
    await anyio.run_process([dcmtk("dcmconv"), *flags, *padding, str(source), str(reference)])
    ours = data_set_part(result.path.read_bytes())
    theirs = data_set_part(reference.read_bytes())
    if options.padding is None:
        assert ours == theirs
    else:  # the file padding depends on the meta length, which differs (implementation UIDs)
        assert result.path.stat().st_size % 256 == 0
        assert reference.stat().st_size % 256 == 0
        assert ours[: _last_padding(ours)] == theirs[: _last_padding(theirs)]


def _last_padding(data: bytes) -> int:
    """Where the last (FFFC,FFFC) element starts, in either byte order."""
    at = max(data.rfind(b"\xfc\xff\xfc\xff"), data.rfind(b"\xff\xfc\xff\xfc"))
    assert at > 0
    return at


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_compressed_data_set_keeps_its_syntax_when_another_is_asked(tmp_path: Path) -> None:
    source = TEST_FILES / "JPEG2000.dcm"
    options = OutputOptions(transfer_syntax=uids.IMPLICIT_VR_LE, group_length="create")
    async with storage_scp(FileSink(tmp_path, options=options), Prefer.ACCEPT_ALL) as port:
        code, output = await storescu(port, source, "-xw")
    assert code == 0, output
    [stored] = _names(tmp_path)
    back = pydicom.dcmread(tmp_path / stored)
    assert back.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.91"
    assert back.PixelData == pydicom.dcmread(source).PixelData
    assert 0x00080000 in back  # the other options still apply


# --- DCMTK's tables, read from libdcmdata itself ------------------------------------------------


def _libdcmdata() -> ctypes.CDLL:
    try:
        return ctypes.CDLL("libdcmdata.so.17")
    except OSError:
        pytest.skip("libdcmdata.so.17 (DCMTK 3.6.7) is not installed")


def test_modality_prefixes_are_dcmtks() -> None:
    from pydicom._uid_dict import UID_dictionary

    lib = _libdcmdata()
    to_modality = lib["_Z24dcmSOPClassUIDToModalityPKcS0_"]
    to_modality.restype = ctypes.c_char_p
    to_modality.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    for uid in {*UID_dictionary, *MODALITY_PREFIXES}:
        theirs = to_modality(uid.encode(), UNKNOWN.encode())
        assert modality_prefix(uid) == theirs.decode(), uid
    assert modality_prefix("1.2.3.4") == UNKNOWN


def test_storage_sop_classes_include_dcmtks() -> None:
    lib = _libdcmdata()
    count = ctypes.c_int.in_dll(lib, "numberOfDcmAllStorageSOPClassUIDs").value
    table = (ctypes.c_char_p * count).in_dll(lib, "dcmAllStorageSOPClassUIDs")
    dcmtk_classes = {(table[i] or b"").decode() for i in range(count)}
    assert dcmtk_classes <= set(storage_sop_classes())
    assert len(set(storage_sop_classes())) == len(storage_sop_classes())
