"""`aiomove find`: DCMTK findscu's command line, plus the matches as JSON or CSV.

Arguments are parsed by `aiomove.options` with the `FINDSCU` table (findscu 3.6.7's options;
those it has and aiomove cannot honour are refused by name). What findscu does, and so what
this does:
- one association; each query file (or the `-k` keys alone) is one C-FIND-RQ, sent `--repeat`
  times before the next file; `-k` keys override or add to each file's attributes;
- responses are numbered on a counter that runs over the whole association and counts final
  responses too: `-X` writes pending response N to `rspNNNN.dcm` in `-od` (so a second request
  continues at the number after the first request's final response), `--cancel n` sends
  C-CANCEL when the counter reaches n, `-Xlo n` writes responses 1..n only;
- responses are dumped to stderr unless `-sr`, `-X`, `-q`, `--json` or `--csv` (`+sr` forces).

aiomove's additions: `--json` (one DICOM JSON object per match and line, PS3.18 F.2) and
`--csv` on stdout, `--fields` choosing their columns (and adding them to the query as return
keys, PS3.4 C.4.1.1.3.2), and the `--patient-id`/`--study-uid`/`--series-uid`/`--accession`/
`--level` flags, which also request the unique keys of the query level and those above it.

Exit codes. findscu's manual has no table; its source (findscu.cc) returns 0, 1 for a command
line error, and 2 when the query could not be done (connection, association, negotiation,
DIMSE or release failure). Deliberate differences: a failure status in a final C-FIND-RSP
exits 2 (findscu exits 0 and mentions it only with -v); an `-X` file that cannot be written
exits 40 (DCMTK's EXITCODE_CANNOT_WRITE_OUTPUT_FILE; findscu logs it and exits 0).
"""

from __future__ import annotations

import base64
import csv
import json
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import anyio
from pydicom import Dataset
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.uid import generate_uid

from aiomove.association import UNCOMPRESSED, Association, Peer, Timeouts, connect
from aiomove.cli_move import report_error, start_command
from aiomove.errors import AiomoveError, AssociationAborted
from aiomove.find import MODALITY_WORKLIST_FIND, FindOperation, FindResponse
from aiomove.log import get_logger
from aiomove.movescu import output_directory_problem
from aiomove.operation import CANCEL_TIMEOUT
from aiomove.options import ParsedArgs
from aiomove.options_find import FINDSCU
from aiomove.options_specs import effective_log_level, tls_contexts
from aiomove.proto import uids
from aiomove.proto.status import Status
from aiomove.query import (
    QUERY_RETRIEVE_LEVEL,
    UNIQUE_KEYS,
    Level,
    Model,
    QueryError,
    build_identifier,
    encode_identifier,
    friendly_identifier,
    key_name,
    load_query_file,
    make_element,
    parse_key,
)
from aiomove.runner import run_async
from aiomove.storage import encode_file_meta
from aiomove.tls import TlsError
from aiomove.transfer import PROPOSE, proposed_transfer_syntaxes

log = get_logger("aiomove.cli")

EXIT_OK = 0
EXIT_SYNTAX = 1
#: findscu.cc: "int exitCode = cond.good() ? 0 : 2" after performQuery().
EXIT_QUERY_FAILED = 2
EXIT_CANNOT_WRITE_OUTPUT_FILE = 40

_FRIENDLY = ("patient_id", "study_uid", "series_uid", "accession")


@dataclass(frozen=True)
class FindSettings:
    """Everything one `aiomove find` run needs (filled from findscu's options)."""

    peer: Peer
    identifiers: Sequence[Dataset]
    model: str = MODALITY_WORKLIST_FIND
    ae_title: str = "FINDSCU"
    proposed_transfer_syntaxes: tuple[str, ...] = UNCOMPRESSED
    compression_level: int = 6
    timeouts: Timeouts = field(default_factory=Timeouts)
    max_pdu_length: int = 16384
    repeat: int = 1
    abort: bool = False
    cancel_after: int | None = None
    #: `-X`: where rspNNNN.dcm go (None: not extracted); `-Xlo`: how many at most.
    extract_dir: Path | None = None
    limit_output: int | None = None
    show_responses: bool = True
    #: "json", "csv" or None; `fields` are (column label, tag), empty = the default columns.
    output_format: str | None = None
    fields: tuple[tuple[str, BaseTag], ...] = ()


@dataclass
class FindOutcome:
    """What a run did: the final status of each request, matches, files not written."""

    finals: list[Status | None] = field(default_factory=list)
    matches: int = 0
    write_errors: list[str] = field(default_factory=list)


# --- the query -------------------------------------------------------------------------------


def parse_fields(text: str | None) -> tuple[tuple[str, BaseTag], ...]:
    """`--fields PatientID,(0020,000d),...`: (label as given, tag) per field."""
    if text is None:
        return ()
    fields = []
    for name in (part.strip() for part in text.split(",")):
        if not name:
            raise QueryError(f"--fields: empty field in {text!r}")
        tag, value = parse_key(name)
        if value is not None:
            raise QueryError(f"--fields: {name!r} names a key, it cannot set a value")
        fields.append((name, tag))
    return tuple(fields)


def _model(args: ParsedArgs) -> Model | None:
    """The Q/R information model of -P/-S/-O; None for -W (worklist)."""
    return None if args.model == "worklist" else Model(args.model)


def _friendly(args: ParsedArgs, model: Model | None) -> tuple[Dataset, list[BaseTag]]:
    """The keys of the friendly flags with their level (none for a worklist), and the unique
    keys of that level and the levels above: return keys, so that each match is identified."""
    if not any(args[k] for k in _FRIENDLY) and args.level is None:
        return Dataset(), []
    values = {k: args[k] for k in _FRIENDLY}
    ds = friendly_identifier(**values, level=args.level)
    if model is None:
        if QUERY_RETRIEVE_LEVEL in ds:
            del ds[QUERY_RETRIEVE_LEVEL]
        return ds, []
    level = Level(str(ds.QueryRetrieveLevel))
    if args.level is None and level not in model.levels:
        # e.g. --patient-id under -S: the model's top level, the patient's studies
        level = model.levels[0]
        ds = friendly_identifier(**values, level=level)
    return ds, [UNIQUE_KEYS[key] for key in model.levels[: model.levels.index(level) + 1]]


def _level_warnings(ds: Dataset, model: Model) -> list[str]:
    """PS3.4 C.4.1.2.1: a Q/R C-FIND names a level of its information model."""
    name = key_name(QUERY_RETRIEVE_LEVEL)
    value = str(ds.get(QUERY_RETRIEVE_LEVEL).value or "") if QUERY_RETRIEVE_LEVEL in ds else ""
    if not value.strip():
        return [f"{name} is missing or empty: the peer cannot tell what to match"]
    if value.strip() not in model.levels:
        allowed = ", ".join(model.levels)
        return [f"{name} {value!r} is not a level of the {model.label} model ({allowed})"]
    return []


def find_identifiers(args: ParsedArgs, fields: Sequence[tuple[str, BaseTag]] = ()) -> list[Dataset]:
    """One identifier per query file (or one from the keys alone): file, then `-k` keys, then
    the friendly flags; `fields` missing from it are added as zero-length return keys."""
    model = _model(args)
    friendly, return_keys = _friendly(args, model)
    bases: list[Dataset | None] = [load_query_file(f) for f in args.dcmfile_in] or [None]
    result = []
    for base in bases:
        ds = build_identifier(base, list(args.keys or ()))
        ds.update(friendly)
        for tag in [*return_keys, *(tag for _, tag in fields)]:
            if tag not in ds:
                ds[tag] = make_element(tag, None)
        if model is not None:
            for warning in _level_warnings(ds, model):
                log.warning("query.invalid", problem=warning)
        result.append(ds)
    return result


def settings_from_args(args: ParsedArgs) -> FindSettings:
    """`FindSettings` from findscu's options; QueryError for a bad key, file or field."""
    model = _model(args)
    fields = parse_fields(args.fields)
    extract = args.extract == "dicom"
    quiet = effective_log_level(args) == "fatal"
    default_show = not (extract or quiet or args.output_format is not None)
    show = default_show if args.show_responses is None else bool(args.show_responses)
    client_tls, _ = tls_contexts(args)
    return FindSettings(
        peer=Peer(str(args.peer), int(args.port), str(args.call), ssl_context=client_tls),
        identifiers=find_identifiers(args, fields),
        model=MODALITY_WORKLIST_FIND if model is None else model.find_uid,
        ae_title=str(args.aetitle),
        proposed_transfer_syntaxes=proposed_transfer_syntaxes(PROPOSE[str(args.propose)]),
        compression_level=int(args.compression_level),
        timeouts=Timeouts(
            connect=args.timeout,
            acse=args.acse_timeout,
            dimse=args.dimse_timeout,
            write=args.socket_timeout or None,
        ),
        max_pdu_length=int(args.max_pdu),
        repeat=int(args.repeat),
        abort=bool(args.abort),
        cancel_after=args.cancel,
        extract_dir=Path(args.output_directory) if extract else None,
        limit_output=args.limit_output,
        show_responses=show,
        output_format=args.output_format,
        fields=fields,
    )


def encode_query(ds: Dataset, transfer_syntax: str, compression_level: int = 6) -> bytes:
    """The identifier in the accepted transfer syntax; deflated at findscu's `+cl` level."""
    if transfer_syntax != uids.DEFLATED_EXPLICIT_VR_LE:
        return encode_identifier(ds, transfer_syntax)
    plain = encode_identifier(ds, uids.EXPLICIT_VR_LE)
    packer = zlib.compressobj(compression_level, zlib.DEFLATED, -zlib.MAX_WBITS)  # PS3.5 A.5
    return packer.compress(plain) + packer.flush()


# --- what is done with each response ---------------------------------------------------------


def _label(tag: BaseTag) -> str:
    return keyword_for_tag(tag) or f"({tag.group:04X},{tag.element:04X})"


def _text(elem: DataElement | None) -> str:
    """A CSV cell: multiple values joined by "\\" as DICOM does; sequences as DICOM JSON."""
    if elem is None or elem.value is None:
        return ""
    value = elem.value
    if elem.VR == "SQ":
        return json.dumps([item.to_json_dict() for item in value])
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value)
    return str(value)  # str, PersonName, IS, DS, numbers


def _dump(ds: Dataset, indent: str = "") -> list[str]:
    """A dcmdump-like listing of a response identifier, for people."""
    lines = []
    for elem in ds:
        tag = f"({elem.tag.group:04x},{elem.tag.element:04x})"
        if elem.VR == "SQ":
            head = f"{indent}{tag} SQ ({len(elem.value or ())} items)"
            lines.append(f"{head:<56} # {elem.keyword}")
            for item in elem.value or ():
                lines += _dump(item, indent + "  ")
            continue
        if isinstance(elem.value, bytes):
            shown = f"({len(elem.value)} bytes)"
        else:
            shown = "[" + _text(elem) + "]"
        head = f"{indent}{tag} {elem.VR} {shown}"
        lines.append(f"{head:<56} # {elem.keyword or 'unknown'}")
    return lines


class Responses:
    """The findscu response counter and everything done per response: the dump, `-X` files,
    `--cancel`, and the JSON/CSV output."""

    def __init__(
        self, settings: FindSettings, outcome: FindOutcome, out: TextIO, err: TextIO
    ) -> None:
        self.settings = settings
        self.outcome = outcome
        self.out = out
        self.err = err
        self.count = 0  # every response of the association, finals included (findscu)
        self.columns = settings.fields or self._default_columns()
        self._csv = csv.writer(out, lineterminator="\n")
        if settings.output_format == "csv":
            self._csv.writerow([label for label, _ in self.columns])
            out.flush()

    def _default_columns(self) -> tuple[tuple[str, BaseTag], ...]:
        """Every top-level key of the queries, in tag order (CSV without --fields)."""
        seen: dict[BaseTag, None] = {}
        for ds in self.settings.identifiers:
            seen.update(dict.fromkeys(elem.tag for elem in ds))
        return tuple((_label(tag), tag) for tag in seen)

    async def received(self, rsp: FindResponse, operation: FindOperation) -> None:
        self.count += 1
        if rsp.is_match and rsp.identifier is not None:
            self.outcome.matches += 1
            self.show(rsp, rsp.identifier)
            await self.extract(rsp)
            self.emit(rsp.identifier)
        if self.settings.cancel_after == self.count and rsp.status.is_pending:
            await operation.cancel()

    def show(self, rsp: FindResponse, ds: Dataset) -> None:
        if not self.settings.show_responses:
            return
        lines = ["-" * 27, f"Find Response: {self.count} ({rsp.status.category.value})"]
        self.err.write("\n".join([*lines, *_dump(ds), ""]) + "\n")
        self.err.flush()

    async def extract(self, rsp: FindResponse) -> None:
        """`-X`: the identifier as received, in its transfer syntax, as a Part 10 file."""
        directory = self.settings.extract_dir
        limit = self.settings.limit_output
        if directory is None or rsp.raw is None or (limit is not None and self.count > limit):
            return
        path = directory / f"rsp{self.count:04d}.dcm"
        # No SOP class describes a C-FIND identifier: the query's information model does.
        meta = encode_file_meta(self.settings.model, generate_uid(), rsp.transfer_syntax)
        try:
            await anyio.Path(path).write_bytes(meta + rsp.raw)
        except OSError as exc:
            problem = f"cannot write {path}: {exc.strerror or exc}"
            log.error("c_find.extract_failed", error=problem)
            self.outcome.write_errors.append(problem)
        else:
            log.info("c_find.extracted", path=str(path))

    def emit(self, ds: Dataset) -> None:
        """`--json` / `--csv`: one line per match on stdout, flushed (a pipe sees it at once)."""
        form = self.settings.output_format
        if form == "json":
            if self.settings.fields:
                chosen = Dataset()
                for _, tag in self.settings.fields:
                    if tag in ds:
                        chosen.add(ds[tag])
                ds = chosen
            self.out.write(json.dumps(ds.to_json_dict()) + "\n")
        elif form == "csv":
            self._csv.writerow([_text(ds.get(tag)) for _, tag in self.columns])
        else:
            return
        self.out.flush()


# --- running ---------------------------------------------------------------------------------


async def _one_request(
    assoc: Association, data: bytes, settings: FindSettings, responses: Responses
) -> Status | None:
    """One C-FIND-RQ; after our C-CANCEL the final response is awaited at most -ta seconds."""
    limit = min(CANCEL_TIMEOUT, settings.timeouts.acse)
    async with assoc.find(data, model=settings.model) as operation:
        with anyio.CancelScope() as waiting:
            bounded = False
            async for rsp in operation:
                await responses.received(rsp, operation)
                if operation.cancelled and not bounded:
                    # PS3.7 §9.3.2.3 sets the SCP no deadline: -ta bounds it, as for move.
                    waiting.deadline = anyio.current_time() + limit
                    bounded = True
        if waiting.cancelled_caught:
            await assoc.abort()
            raise AssociationAborted(
                f"no final C-FIND-RSP within {limit} s of C-CANCEL; association aborted"
            )
    final = operation.final
    return None if final is None else final.status


async def run_find(
    settings: FindSettings,
    outcome: FindOutcome | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> FindOutcome:
    """All requests on one association (each identifier `repeat` times, as findscu)."""
    outcome = outcome if outcome is not None else FindOutcome()
    responses = Responses(settings, outcome, out or sys.stdout, err or sys.stderr)
    async with connect(
        settings.peer,
        ae_title=settings.ae_title,
        contexts=[(settings.model, settings.proposed_transfer_syntaxes)],
        max_pdu_length=settings.max_pdu_length,
        timeouts=settings.timeouts,
    ) as assoc:
        context = assoc.context_for(settings.model)  # NoAcceptedContext: exit 2 as findscu
        for identifier in settings.identifiers:
            data = encode_query(identifier, context.transfer_syntax, settings.compression_level)
            for _ in range(settings.repeat):
                outcome.finals.append(await _one_request(assoc, data, settings, responses))
        if settings.abort:
            await assoc.abort()
    return outcome


def find_main(argv: Sequence[str]) -> int:
    """`aiomove find [options] peer port [dcmfile-in...]`: the exit code."""
    started = start_command(FINDSCU, argv, "find")
    if isinstance(started, int):
        return started
    args = started
    try:
        settings = settings_from_args(args)
    except (QueryError, ValueError) as exc:
        return report_error("find", str(exc), EXIT_SYNTAX)
    except TlsError as exc:  # findscu has no TLS exit code: 3.6.7 exits 1 here
        return report_error("find", str(exc), EXIT_SYNTAX)
    if settings.extract_dir is not None:
        problem = output_directory_problem(settings.extract_dir)
        if problem == "missing":  # findscu's wording, and its exit code
            return report_error("find", "specified output directory does not exist", EXIT_SYNTAX)
        if problem == "unwritable":
            message = f"cannot write to output directory: {settings.extract_dir}"
            return report_error("find", message, EXIT_CANNOT_WRITE_OUTPUT_FILE)
    outcome = FindOutcome()
    try:
        run_async(run_find, settings, outcome)
    except AiomoveError as exc:
        return report_error("find", str(exc), EXIT_QUERY_FAILED)
    except KeyboardInterrupt:
        return 130
    return _exit_code(outcome)


def _exit_code(outcome: FindOutcome) -> int:
    failed = [
        f"request {n}: {status}"
        for n, status in enumerate(outcome.finals, 1)
        if status is None or status.is_failure
    ]
    if failed:
        return report_error("find", "C-FIND failed (" + "; ".join(failed) + ")", EXIT_QUERY_FAILED)
    if outcome.write_errors:
        message = "; ".join(outcome.write_errors)
        return report_error("find", message, EXIT_CANNOT_WRITE_OUTPUT_FILE)
    return EXIT_OK
