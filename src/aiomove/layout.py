"""Where a retrieved instance is stored: `--layout` templates, safe path values, staging.

A layout is a relative path template whose fields are DICOM keywords, e.g. the default
`{PatientID}/{StudyInstanceUID}/{SeriesInstanceUID}/{SOPInstanceUID}.dcm`. Field values come
from the sender and are never trusted (PS3.15 does not make a Patient ID safe as a file name):

- UI values (PS3.5 §9.1) are used as they are only when `is_valid_uid()`; otherwise they are
  sanitised like text and marked `INVALID_`;
- other values are sanitised: '/', '\\', NUL and control characters become '_', runs of dots
  ('..') become '_', a leading '.' becomes '_', padding is stripped, the value is cut to
  `MAX_VALUE_BYTES`; an empty value is `UNKNOWN`.

The template itself is checked once (`Layout.parse`): relative, no '..' or hidden component,
known keywords only, and it must contain {SOPInstanceUID} so that instances never share a
path. Every rendered path is checked again against the output directory (also through
symbolic links) before anything is written: nothing outside it can be created.

`LayoutSink` receives each instance as `FileSink` does, under movescu's name in a per-run
staging directory inside the output directory (same file system, so the final move is a
rename), then reads the header and renames the complete file into its layout path.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import secrets
import shutil
import string
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import anyio
import anyio.to_thread
import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.multival import MultiValue

from aiomove.log import get_logger
from aiomove.proto.uids import is_valid_uid
from aiomove.storage import (
    CANNOT_UNDERSTAND,
    OUT_OF_RESOURCES,
    SUCCESS,
    FileSink,
    OutputOptions,
    StoreRequest,
    StoreResult,
    default_filename,
)

log = get_logger("aiomove.layout")

DEFAULT_LAYOUT = "{PatientID}/{StudyInstanceUID}/{SeriesInstanceUID}/{SOPInstanceUID}.dcm"
#: The value every path needs: one file per instance.
REQUIRED_FIELD = "SOPInstanceUID"
#: Longest sanitised value (UTF-8 bytes): a few fields still fit a 255-byte file name.
MAX_VALUE_BYTES = 64
UNKNOWN = "UNKNOWN"
STAGING_PREFIX = ".aiomove-staging-"

_UNSAFE = re.compile(r"[/\\\x00-\x1f\x7f]")
_DOTS = re.compile(r"\.{2,}")


class LayoutError(ValueError):
    """A template that cannot be used, or a path that would leave the output directory."""


# --- values ----------------------------------------------------------------------------------


def _text(value: Any) -> str:
    """A DICOM value as text: multiple values joined with '\\' (sanitised away later)."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    if isinstance(value, list | tuple | MultiValue):
        return "\\".join(_text(v) for v in value)
    return str(value)


def _cut(text: str, limit: int) -> str:
    """`text` shortened to at most `limit` UTF-8 bytes, on a character boundary."""
    raw = text.encode("utf-8", "replace")
    if len(raw) <= limit:
        return text
    return raw[:limit].decode("utf-8", "ignore")


def sanitise(value: Any) -> str:
    """A value made safe as (part of) one path component; never empty, never hidden."""
    text = _UNSAFE.sub("_", _text(value)).strip()
    text = _DOTS.sub("_", text)
    text = _cut(text, MAX_VALUE_BYTES).strip()
    if text.startswith("."):
        text = "_" + text[1:]
    return text or UNKNOWN


def field_value(keyword: str, value: Any) -> str:
    """The path text of one template field (UIDs checked per PS3.5 §9.1)."""
    if _vr(keyword) != "UI":
        return sanitise(value)
    text = _text(value).strip().rstrip("\x00")
    if not text:
        return UNKNOWN
    return text if is_valid_uid(text) else "INVALID_" + sanitise(text)


def _vr(keyword: str) -> str:
    tag = tag_for_keyword(keyword)
    return "" if tag is None else str(dictionary_VR(tag))


def safe_component(name: str) -> bool:
    """One ordinary path component: not '.', '..' or hidden, no separator, NUL, < 256 bytes."""
    return (
        bool(name)
        and not name.startswith(".")
        and _UNSAFE.search(name) is None
        and len(name.encode("utf-8", "replace")) <= 255
    )


def inside(root: Path, path: Path) -> bool:
    """Whether `path` is within `root`, symbolic links resolved (for what exists)."""
    return path.resolve().is_relative_to(root.resolve())


# --- templates -------------------------------------------------------------------------------

#: One path component: its (literal text, field keyword or None) parts.
Component = tuple[tuple[str, str | None], ...]


@dataclass(frozen=True)
class Layout:
    """A parsed `--layout` template (use `Layout.parse`)."""

    template: str
    components: tuple[Component, ...]

    @property
    def fields(self) -> tuple[str, ...]:
        """The keywords the template uses, in order of first use."""
        seen: dict[str, None] = {}
        for component in self.components:
            for _, name in component:
                if name is not None:
                    seen[name] = None
        return tuple(seen)

    @classmethod
    def parse(cls, template: str) -> Layout:
        """Check a template; raises `LayoutError` saying what is wrong."""
        if not template or template.startswith("/"):
            raise LayoutError(f"layout {template!r} must be a relative path")
        if "\\" in template or "\x00" in template:
            raise LayoutError(f"layout {template!r}: use '/' to separate directories")
        components = tuple(_component(template, part) for part in template.split("/"))
        layout = cls(template, components)
        if REQUIRED_FIELD not in layout.fields:
            raise LayoutError(f"layout {template!r} must contain {{{REQUIRED_FIELD}}}")
        return layout

    def render(self, values: Mapping[str, Any]) -> PurePosixPath:
        """The relative path for an instance whose attributes are `values` (keyword -> value)."""
        parts = []
        for component in self.components:
            name = "".join(
                text + ("" if field is None else field_value(field, values.get(field)))
                for text, field in component
            )
            if not safe_component(name):  # e.g. longer than 255 bytes
                raise LayoutError(f"unusable path component {name[:80]!r}")
            parts.append(name)
        return PurePosixPath(*parts)

    def path(self, root: Path, values: Mapping[str, Any]) -> Path:
        """`root / render(values)`, checked to stay below `root`."""
        path = root.joinpath(*self.render(values).parts)
        if not path.is_relative_to(root):  # cannot happen: every component was checked
            raise LayoutError(f"{path} is outside {root}")
        return path


def _component(template: str, part: str) -> Component:
    if not part:
        raise LayoutError(f"layout {template!r} has an empty path component")
    try:
        parsed = list(string.Formatter().parse(part))
    except ValueError as exc:
        raise LayoutError(f"layout {template!r}: {exc}") from None
    pieces: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in parsed:
        if _UNSAFE.search(literal):
            raise LayoutError(f"layout {template!r}: control characters are not allowed")
        if name is not None:
            if spec or conversion:
                raise LayoutError(f"layout {template!r}: {{{name}}} takes no format or conversion")
            if not name.isidentifier() or tag_for_keyword(name) is None:
                raise LayoutError(f"layout {template!r}: {{{name}}} is not a DICOM keyword")
        pieces.append((literal, name))
    if pieces and pieces[0][0].startswith("."):
        raise LayoutError(f"layout {template!r}: component {part!r} starts with '.' (hidden or ..)")
    return tuple(pieces)


# --- placing received files ------------------------------------------------------------------


def header_values(path: Path, fields: tuple[str, ...]) -> dict[str, Any]:
    """The template fields of a stored Part 10 file, read from its header only."""
    ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(fields))
    return {name: ds.get(name) for name in fields}


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


OnPlaced = Callable[[StoreRequest, StoreResult], None]


class LayoutSink(FileSink):
    """A `FileSink` that stages each instance, then renames it into `layout` below `root`."""

    def __init__(
        self,
        root: Path,
        layout: Layout,
        staging: Path,
        *,
        options: OutputOptions | None = None,
        on_placed: OnPlaced | None = None,
        **sink_options: Any,
    ) -> None:
        """`sink_options` are FileSink's (fsync, max_instance_size, min_free_bytes)."""
        super().__init__(
            staging,
            options=options or OutputOptions(),
            filename=self._staged_name,
            **sink_options,
        )
        self._numbers = itertools.count(1)
        self.root = Path(root)
        self.layout = layout
        self.on_placed = on_placed

    def _staged_name(self, request: StoreRequest) -> str:
        """movescu's name, numbered: two copies of one instance never share a staged file."""
        return f"{default_filename(request)}.{next(self._numbers)}"

    async def store(
        self, request: StoreRequest, chunks: AsyncIterator[bytes | memoryview]
    ) -> StoreResult:
        staged = await super().store(request, chunks)
        if staged.status != SUCCESS or staged.path is None:
            return staged
        # Shielded: a complete file is either placed or removed, even on Ctrl-C.
        with anyio.CancelScope(shield=True):
            try:
                final = await anyio.to_thread.run_sync(self._place, staged.path, request)
            except Exception as exc:  # unreadable header (pydicom raises many kinds), OSError
                await anyio.to_thread.run_sync(_remove, staged.path)
                status = OUT_OF_RESOURCES if isinstance(exc, OSError) else CANNOT_UNDERSTAND
                error = f"cannot place {request.sop_instance_uid}: {exc}"
                log.warning("layout.failed", uid=request.sop_instance_uid, error=str(exc))
                return StoreResult(status, None, staged.size, error)
        placed = StoreResult(SUCCESS, final, staged.size)
        if self.on_placed is not None:
            self.on_placed(request, placed)
        return placed

    def _place(self, staged: Path, request: StoreRequest) -> Path:
        """Worker thread: read the header, create the directories, rename into place."""
        try:
            values = header_values(staged, self.layout.fields)
        except Exception as exc:
            raise LayoutError(f"unreadable header ({type(exc).__name__})") from exc
        # The request's UIDs were checked by FileSink; they name what was moved.
        values["SOPInstanceUID"] = request.sop_instance_uid
        values["SOPClassUID"] = request.sop_class_uid
        final = self.layout.path(self.root, values)
        final.parent.mkdir(parents=True, exist_ok=True)
        if not inside(self.root, final.parent):  # a symbolic link inside the output directory
            raise LayoutError(f"{final.parent} leads outside {self.root}")
        os.replace(staged, final)
        return final


# --- the staging area ------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_staging(root: Path) -> list[Path]:
    """Remove staging directories left by runs that died (SIGKILL, power loss)."""
    removed = []
    for entry in root.glob(STAGING_PREFIX + "*"):
        pid = entry.name[len(STAGING_PREFIX) :].split("-", 1)[0]
        if entry.is_dir() and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


@contextlib.contextmanager
def staging_area(root: Path) -> Iterator[Path]:
    """A fresh hidden directory in `root` for this run; removed with whatever is left in it
    (only files whose placement never happened: partial files are removed by `FileSink`)."""
    for stale in remove_stale_staging(root):
        log.info("layout.stale_staging_removed", path=str(stale))
    path = root / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    path.mkdir()
    try:
        yield path
    finally:
        leftover = [p.name for p in path.iterdir()] if path.exists() else []
        if leftover:
            log.warning("layout.staging_leftover", files=len(leftover))
        shutil.rmtree(path, ignore_errors=True)
