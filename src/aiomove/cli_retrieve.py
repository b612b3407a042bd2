"""`aiomove retrieve`: bulk, resumable study retrieval into a directory layout.

    aiomove retrieve [options] peer port        (`-h` lists the options)

1. Studies: `--input FILE` (a CSV column or one key per line) or `-k` keys forming a C-FIND
   query (STUDY level). Accession numbers and patient IDs are resolved to studies with a
   STUDY-level C-FIND (study root, PS3.4 C.6.2).
2. Plan, per study: an IMAGE-level C-FIND (study root) lists its instances with the values
   the layout needs; an instance whose layout path exists is complete on disk (files only
   ever appear complete: staging + rename). All present: no C-MOVE. None present: one
   STUDY-level C-MOVE. Some present: IMAGE-level C-MOVEs of the missing SOP Instance UIDs,
   one per series (PS3.4 C.4.2.2.1: the levels above keep a single value).
   A layout field the peer leaves out of its C-FIND answers makes the path unknown: such
   instances are retrieved again on every run (the default layout's fields are returned by
   DCMTK dcmqrscp and Orthanc).
3. Moves share one Storage SCP port (`aiomove.retrieve.RetrieveSession`); `--concurrency`
   studies are worked on at once and is the session's per-peer association limit.

Exit codes (movescu's where they apply, `cli_move.exit_code_for_move`): 0 every study
complete; 68 a study incomplete, not found or with warnings; 69 a failure; 61 when every
failure was an association problem; 40 an instance could not be written (disk full); 1 bad
options; 45/40 bad `-od`; 60 port in use; 130
interrupted (the moves are cancelled with C-CANCEL, complete files kept).
"""

from __future__ import annotations

import contextlib
import json
import logging
import ssl
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, cast

import anyio
import anyio.to_thread
import structlog
from pydicom import Dataset

from aiomove.association import Peer, Timeouts
from aiomove.cli_move import (
    EXIT_CANNOT_CREATE_TLS_LAYER,
    EXIT_CANNOT_WRITE_OUTPUT_FILE,
    EXIT_CMOVE_ERROR,
    EXIT_CMOVE_WARNING,
    EXIT_OK,
    EXIT_SYNTAX,
    check_output_directory,
    exit_code_for_move,
    report_error,
    start_command,
)
from aiomove.errors import AiomoveError, ListenError, NoAcceptedContext, StatusError
from aiomove.find import find_all
from aiomove.keys import read_keys
from aiomove.layout import DEFAULT_LAYOUT, Layout, LayoutError, LayoutSink, staging_area
from aiomove.log import LEVELS, configure, get_logger
from aiomove.options import OptionError, ParsedArgs
from aiomove.options_retrieve import RETRIEVE
from aiomove.options_security import only_moved, security_settings
from aiomove.options_specs import effective_log_level, tls_contexts
from aiomove.proto import uids
from aiomove.query import Model, QueryError, build_identifier
from aiomove.retrieve import RetrieveResult, RetrieveSession, open_session
from aiomove.runner import run_async
from aiomove.storage import OUT_OF_RESOURCES, StoreRequest, StoreResult
from aiomove.tls import TlsError
from aiomove.transfer import PREFER, Prefer

log = get_logger("aiomove.retrieve")

EXIT_INTERRUPTED = 130
#: SOP Instance UIDs per IMAGE-level C-MOVE request (bounded identifier size).
UIDS_PER_MOVE = 500


# --- settings and input ----------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    peer: Peer
    port: int
    output: Path
    layout: Layout
    ae_title: str = "AIOMOVE"
    model: Model = Model.STUDY_ROOT
    prefer: Prefer = Prefer.UNCOMPRESSED
    timeouts: Timeouts = field(default_factory=Timeouts)
    max_pdu_length: int = 16384
    concurrency: int = 4
    linger: float = 5.0
    fsync: bool = False
    key: str = "StudyInstanceUID"  # what `keys` are
    keys: tuple[str, ...] = ()
    query: Dataset | None = None  # the -k C-FIND identifier
    #: DICOM TLS on the Storage SCP (the outgoing associations' is `peer.ssl_context`).
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False, repr=False)
    #: The Storage SCP's access control and limits (`options_security.security_settings`).
    security: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False)
    #: `--only-moved`: refuse C-STOREs that belong to no outstanding retrieve.
    only_moved: bool = False


def study_query(keys: Sequence[str]) -> Dataset:
    """The STUDY-level C-FIND identifier of `-k` keys, with the return keys we need."""
    ds = build_identifier(None, list(keys))
    level = str(ds.get("QueryRetrieveLevel", "") or "STUDY").strip().upper()
    if level != "STUDY":
        raise QueryError(f"QueryRetrieveLevel {level!r}: retrieve selects studies (STUDY)")
    ds.QueryRetrieveLevel = "STUDY"
    for keyword in ("StudyInstanceUID", "PatientID"):
        if keyword not in ds:
            setattr(ds, keyword, "")
    return ds


def settings_from(args: ParsedArgs) -> Settings:
    """Settings from parsed options; QueryError/LayoutError for what cannot be used."""
    layout = Layout.parse(str(args.layout) if args.layout is not None else DEFAULT_LAYOUT)
    key, keys, query = "StudyInstanceUID", tuple[str, ...](), None
    if args.input is not None:
        key, listed = read_keys(Path(args.input), args.key_type)
        keys = tuple(listed)
    else:
        query = study_query(args.keys)
    client_tls, server_tls = tls_contexts(args, server=True)
    return Settings(
        peer=Peer(str(args.peer), int(args.port), str(args.call), ssl_context=client_tls),
        port=int(args.retrieve_port),
        output=Path(args.output_directory).absolute(),
        layout=layout,
        ae_title=str(args.aetitle),
        model=Model(args.model),
        prefer=PREFER[str(args.prefer)],
        timeouts=Timeouts(connect=args.timeout, acse=args.acse_timeout, dimse=args.dimse_timeout),
        max_pdu_length=int(args.max_pdu),
        concurrency=int(args.concurrency),
        linger=float(args.linger),
        fsync=bool(args.fsync),
        key=key,
        keys=keys,
        query=query,
        ssl_context=server_tls,
        security=security_settings(args, daemon="movescu"),
        only_moved=only_moved(args),
    )


# --- outcome ---------------------------------------------------------------------------------


@dataclass
class Instance:
    """One instance the IMAGE-level C-FIND listed, and its layout path (None: unknown)."""

    sop_instance_uid: str
    series_uid: str
    path: Path | None


@dataclass
class Move:
    level: str
    result: RetrieveResult

    def to_json(self) -> dict[str, Any]:
        received = self.result.received
        requested = self.result.query.get("SOPInstanceUID")
        return {
            "level": self.level,
            **self.result.to_json(),
            "requested_sop_instance_uids": [] if requested is None else list(_listed(requested)),
            "sop_instance_uids": [r.sop_instance_uid for r in received],
            "paths": [r.path for r in received if r.path is not None],
        }


@dataclass
class Study:
    """One study: where it came from, what the plan found, the moves and what is missing."""

    uid: str
    origin: str
    patient_id: str | None = None
    expected: list[str] | None = None  # from the IMAGE-level C-FIND; None without a plan
    present: int = 0
    moves: list[Move] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    error: str | None = None
    code: int = EXIT_OK  # exit code of `error`
    done: bool = False

    @property
    def state(self) -> str:
        """complete, skipped (all on disk), incomplete, not-found, failed, or cancelled."""
        results = [m.result for m in self.moves]
        if self.error is not None or any(_failed(r) for r in results):
            return "failed"
        if any(r.final is not None and r.final.status.is_cancel for r in results) or not self.done:
            return "cancelled"
        received = sum(len(r.stored_uids) for r in results)
        if not self.expected and not self.present and received == 0:
            return "not-found"
        if self.missing or not all(r.complete for r in results):
            return "incomplete"
        return "complete" if results else "skipped"

    def to_json(self) -> dict[str, Any]:
        return {
            "study_instance_uid": self.uid,
            "origin": self.origin,
            "state": self.state,
            "expected": None if self.expected is None else len(self.expected),
            "already_present": self.present,
            "moves": [m.to_json() for m in self.moves],
            "missing": self.missing,
            "error": self.error,
        }


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _failed(result: RetrieveResult) -> bool:
    status = None if result.final is None else result.final.status
    return result.error is not None or status is None or status.is_failure


@dataclass
class Outcome:
    """Everything one run did (the report), filled in as it goes."""

    studies: list[Study] = field(default_factory=list)
    unresolved: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    code: int = EXIT_OK
    interrupted: bool = False
    peak_associations: int = 0  # most C-MOVE associations open at once
    started: float = field(default_factory=time.monotonic)

    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.code != EXIT_OK:
            return self.code
        if self.unwritten():  # our disk refused instances: it outranks the source's status
            return EXIT_CANNOT_WRITE_OUTPUT_FILE
        failures = [s.code or EXIT_CMOVE_ERROR for s in self.studies if s.state == "failed"]
        failures += [u["code"] for u in self.unresolved if u["code"] != EXIT_OK]
        if failures:
            return failures[0] if len(set(failures)) == 1 else EXIT_CMOVE_ERROR
        if self.unresolved or any(s.state not in ("complete", "skipped") for s in self.studies):
            return EXIT_CMOVE_WARNING
        return EXIT_OK

    def unwritten(self) -> int:
        """Instances our Storage SCP refused with 0xA700 (disk full or failing)."""
        return sum(
            r.status == OUT_OF_RESOURCES
            for s in self.studies
            for m in s.moves
            for r in m.result.received
        )

    def to_json(self, settings: Settings) -> dict[str, Any]:
        received = [r for s in self.studies for m in s.moves for r in m.result.received]
        states: dict[str, int] = {}
        for study in self.studies:
            states[study.state] = states.get(study.state, 0) + 1
        return {
            "peer": str(settings.peer),
            "output_directory": str(settings.output),
            "layout": settings.layout.template,
            "exit_code": self.exit_code(),
            "interrupted": self.interrupted,
            "error": self.error,
            "states": states,
            "instances_received": len(received),
            "bytes_received": sum(r.size for r in received),
            "seconds": round(time.monotonic() - self.started, 3),
            "peak_associations": self.peak_associations,
            "unresolved": self.unresolved,
            "studies": [s.to_json() for s in self.studies],
        }


# --- progress --------------------------------------------------------------------------------


class _Stderr:
    """Whatever sys.stderr is now (rich's live display redirects it while it runs)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


class Tracker:
    """Progress: a live rich display on a terminal, else one structlog line per study."""

    def __init__(self, *, live: bool, lines: Any) -> None:
        self.live = live
        self.lines = lines  # a structlog logger, or None for silence
        self.studies = self.studies_done = 0
        self.instances = self.instances_done = self.bytes = 0
        self.started = time.monotonic()
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> Tracker:
        if self.live:
            from rich import progress as rp
            from rich.console import Console

            self._progress = rp.Progress(
                rp.TextColumn("{task.description:>9}"),
                rp.BarColumn(),
                rp.MofNCompleteColumn(),
                rp.TextColumn("{task.fields[info]}"),
                rp.TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._progress.start()
            for name in ("studies", "instances"):
                self._tasks[name] = self._progress.add_task(name, total=None, info="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._refresh()
            self._progress.stop()

    def _refresh(self) -> None:
        if self._progress is None:
            return
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = f"{self.bytes / elapsed / 1e6:7.1f} MB/s"
        update = self._progress.update
        update(self._tasks["studies"], completed=self.studies_done, total=self.studies)
        total = max(self.instances, self.instances_done)
        update(self._tasks["instances"], completed=self.instances_done, total=total, info=rate)

    def begin(self, studies: int) -> None:
        self.studies = studies
        self._refresh()

    def planned(self, instances: int) -> None:
        self.instances += instances
        self._refresh()

    def placed(self, request: StoreRequest, result: StoreResult) -> None:
        self.instances_done += 1
        self.bytes += result.size
        self._refresh()

    def study_done(self, study: Study) -> None:
        self.studies_done += 1
        self._refresh()
        if self.lines is not None and not self.live:
            received = sum(len(m.result.stored_uids) for m in study.moves)
            self.lines.info(
                "retrieve.study",
                study=study.uid,
                state=study.state,
                received=received,
                already_present=study.present,
                missing=len(study.missing),
                progress=f"{self.studies_done}/{self.studies}",
                mb_per_s=round(self.bytes / max(time.monotonic() - self.started, 1e-6) / 1e6, 2),
            )


def progress_lines(args: ParsedArgs) -> Any:
    """A structlog logger for progress lines, independent of the -ll threshold (which
    stays at warn by default); silent with -q or -ll fatal/error. With -lc: the normal one."""
    if args.log_config is not None:
        return log
    level = effective_log_level(args)
    if LEVELS[level] > logging.WARNING:
        return None
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if args.log_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    return structlog.wrap_logger(
        structlog.PrintLogger(file=cast(TextIO, _Stderr())),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    )


# --- finding ---------------------------------------------------------------------------------


async def _find(settings: Settings, identifier: Dataset) -> list[Dataset]:
    return await find_all(
        settings.peer,
        identifier,
        ae_title=settings.ae_title,
        model=uids.STUDY_ROOT_QR_FIND,
        timeouts=settings.timeouts,
        max_pdu_length=settings.max_pdu_length,
    )


async def resolve(settings: Settings, outcome: Outcome, limiter: anyio.CapacityLimiter) -> None:
    """Fill `outcome.studies` from the input: listed study UIDs, or C-FIND matches."""
    if settings.key == "StudyInstanceUID" and settings.query is None:
        outcome.studies = [Study(uid, f"StudyInstanceUID={uid}") for uid in settings.keys]
        return
    queries: list[tuple[str, Dataset]] = []
    if settings.query is not None:
        queries.append(("query", settings.query))
    for key in settings.keys:
        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        setattr(ds, settings.key, key)
        ds.StudyInstanceUID = ""
        ds.PatientID = ds.get("PatientID", "")
        queries.append((f"{settings.key}={key}", ds))
    found: list[list[Study]] = [[] for _ in queries]

    async def one(index: int, origin: str, identifier: Dataset) -> None:
        async with limiter:
            try:
                matches = await _find(settings, identifier)
            except AiomoveError as exc:
                log.warning("retrieve.resolve_failed", key=origin, error=str(exc))
                outcome.unresolved.append(
                    {"key": origin, "error": str(exc), "code": exit_code_for_move(exc)}
                )
                return
        for match in matches:
            uid = str(match.get("StudyInstanceUID", "") or "").strip()
            if uids.is_valid_uid(uid):
                found[index].append(Study(uid, origin, str(match.get("PatientID", "") or "")))
            else:
                log.warning("retrieve.bad_study_uid", key=origin, uid=uid)
        if not found[index]:
            log.warning("retrieve.no_study", key=origin)
            outcome.unresolved.append({"key": origin, "error": None, "code": EXIT_OK})

    async with anyio.create_task_group() as tg:
        for index, (origin, identifier) in enumerate(queries):
            tg.start_soon(one, index, origin, identifier)
    order = [origin for origin, _ in queries]
    outcome.unresolved.sort(key=lambda u: order.index(u["key"]))
    if settings.query is not None and not found[0]:
        outcome.unresolved = [u for u in outcome.unresolved if u["code"] != EXIT_OK]
    unique: dict[str, Study] = {}
    for studies in found:
        for study in studies:
            unique.setdefault(study.uid, study)
    outcome.studies = list(unique.values())


def image_query(settings: Settings, study_uid: str) -> Dataset:
    """IMAGE-level C-FIND (study root) of a study's instances, with the layout's fields."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "IMAGE"
    ds.StudyInstanceUID = study_uid
    for keyword in ("PatientID", "SeriesInstanceUID", "SOPInstanceUID", *settings.layout.fields):
        if keyword not in ds:
            setattr(ds, keyword, "")
    return ds


def _instance(settings: Settings, match: Dataset) -> Instance | None:
    sop = str(match.get("SOPInstanceUID", "") or "").strip()
    series = str(match.get("SeriesInstanceUID", "") or "").strip()
    if not uids.is_valid_uid(sop) or not uids.is_valid_uid(series):
        log.warning("retrieve.bad_match", sop_instance_uid=sop, series_uid=series)
        return None
    fields = settings.layout.fields
    path = None
    if all(name in match for name in fields):  # a key the peer did not return: unknown path
        path = settings.layout.path(settings.output, {name: match.get(name) for name in fields})
    return Instance(sop, series, path)


async def plan(settings: Settings, study: Study) -> list[Instance] | None:
    """The study's instances (None when the peer cannot list them: retrieve it whole)."""
    try:
        matches = await _find(settings, image_query(settings, study.uid))
    except (StatusError, NoAcceptedContext) as exc:
        log.warning("retrieve.no_plan", study=study.uid, error=str(exc))
        return None
    instances = [i for i in (_instance(settings, m) for m in matches) if i is not None]
    if not study.patient_id:
        study.patient_id = next((str(m.PatientID) for m in matches if m.get("PatientID")), None)
    return list({i.sop_instance_uid: i for i in instances}.values())


def _exists(instances: list[Instance]) -> set[str]:
    return {i.sop_instance_uid for i in instances if i.path is not None and i.path.exists()}


def move_queries(
    settings: Settings, study: Study, instances: list[Instance] | None, present: set[str]
) -> list[tuple[str, Dataset]]:
    """(level, identifier) of the C-MOVEs that bring what is missing."""

    def base(level: str) -> Dataset:
        ds = Dataset()
        ds.QueryRetrieveLevel = level
        if settings.model is Model.PATIENT_ROOT:  # PS3.4 C.4.2.2.1: the patient's unique key
            ds.PatientID = study.patient_id or ""
        ds.StudyInstanceUID = study.uid
        return ds

    if instances is None or not present:
        return [("STUDY", base("STUDY"))]
    by_series: dict[str, list[str]] = {}
    for instance in instances:
        if instance.sop_instance_uid not in present:
            by_series.setdefault(instance.series_uid, []).append(instance.sop_instance_uid)
    queries = []
    for series, missing in by_series.items():
        for start in range(0, len(missing), UIDS_PER_MOVE):
            ds = base("IMAGE")
            ds.SeriesInstanceUID = series
            ds.SOPInstanceUID = missing[start : start + UIDS_PER_MOVE]
            queries.append(("IMAGE", ds))
    return queries


async def retrieve_study(
    settings: Settings, session: RetrieveSession, study: Study, tracker: Tracker
) -> None:
    """Plan, move what is missing, reconcile with what is on disk."""
    try:
        instances = await plan(settings, study)
    except AiomoveError as exc:
        study.error, study.code = f"C-FIND failed: {exc}", exit_code_for_move(exc)
        log.warning("retrieve.plan_failed", study=study.uid, error=str(exc))
        study.done = True
        return
    except LayoutError as exc:  # e.g. a rendered name longer than 255 bytes
        study.error, study.code = str(exc), EXIT_CMOVE_ERROR
        study.done = True
        return
    present = await anyio.to_thread.run_sync(_exists, instances or [])
    study.present = len(present)
    if instances is not None:
        study.expected = [i.sop_instance_uid for i in instances]
        tracker.planned(len(instances) - len(present))
    # Nothing listed: the peer may not list IMAGE level; a STUDY-level C-MOVE tells.
    if instances is None or not instances or len(present) < len(instances):
        for level, query in move_queries(settings, study, instances, present):
            result = await session.retrieve(settings.peer, query, model=settings.model.move_uid)
            study.moves.append(Move(level, result))
    if instances is not None:
        received = {uid for m in study.moves for uid in m.result.stored_uids}
        study.missing = [u for u in study.expected or [] if u not in present | received]
    study.done = True


async def run(settings: Settings, outcome: Outcome, tracker: Tracker) -> None:
    limiter = anyio.CapacityLimiter(settings.concurrency)
    with staging_area(settings.output) as staging:
        sink = LayoutSink(
            settings.output,
            settings.layout,
            staging,
            on_placed=tracker.placed,
            fsync=settings.fsync,
            **settings.security.get("sink", {}),
        )
        security = settings.security
        async with contextlib.AsyncExitStack() as stack:
            try:
                session = await stack.enter_async_context(
                    open_session(
                        sink,
                        port=settings.port,
                        ae_title=settings.ae_title,
                        per_peer_limit=settings.concurrency,
                        prefer=settings.prefer,
                        timeouts=settings.timeouts,
                        max_pdu_length=settings.max_pdu_length,
                        linger=settings.linger,
                        ssl_context=settings.ssl_context,
                        only_moved=settings.only_moved,
                        storage_options={
                            **security.get("handler", {}),
                            **security.get("acceptor", {}),
                        },
                    )
                )
            except BaseException as exc:
                listen = _os_error(exc)
                if listen is None:
                    raise
                message = f"cannot listen on port {settings.port}: {listen.strerror or listen}"
                raise ListenError(message, listen) from None
            await resolve(settings, outcome, limiter)
            tracker.begin(len(outcome.studies))

            async def one(study: Study) -> None:
                async with limiter:
                    await retrieve_study(settings, session, study, tracker)
                tracker.study_done(study)

            try:
                async with anyio.create_task_group() as tg:
                    for study in outcome.studies:
                        tg.start_soon(one, study)
            finally:
                outcome.peak_associations = max(session.peak_associations.values(), default=0)


def _os_error(exc: BaseException) -> OSError | None:
    """The OSError a failed listen raised, also from inside an exception group."""
    if isinstance(exc, OSError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _os_error(inner)
            if found is not None:
                return found
    return None


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


# --- main ------------------------------------------------------------------------------------


def _write_report(path: str | None, outcome: Outcome, settings: Settings) -> None:
    if path:
        Path(path).write_text(json.dumps(outcome.to_json(settings), indent=2) + "\n")


def summary(outcome: Outcome) -> str:
    """One line: how many studies are not complete, and the first error seen."""
    unwritten = outcome.unwritten()
    if unwritten:
        return f"cannot write output file: {unwritten} instance(s) refused with 0xA700"
    bad = [s for s in outcome.studies if s.state not in ("complete", "skipped")]
    errors = [u["error"] for u in outcome.unresolved if u["error"]]
    errors += [s.error for s in bad if s.error]
    errors += [m.result.error for s in bad for m in s.moves if m.result.error]
    parts = [f"{len(bad)} of {len(outcome.studies)} studies not complete"] if bad else []
    if outcome.unresolved:
        parts.append(f"{len(outcome.unresolved)} key(s) without a study")
    if errors:
        parts.append(f"first error: {errors[0]}")
    return "; ".join(parts)


def retrieve_main(argv: Sequence[str]) -> int:
    """`aiomove retrieve [options] peer port`: the exit code."""
    started = start_command(RETRIEVE, argv, "retrieve")
    if isinstance(started, int):
        return started
    args = started
    try:
        settings = settings_from(args)
    except (QueryError, LayoutError, OptionError, ValueError) as exc:
        return report_error("retrieve", str(exc), EXIT_SYNTAX)
    except TlsError as exc:
        return report_error("retrieve", str(exc), EXIT_CANNOT_CREATE_TLS_LAYER)
    code = check_output_directory("retrieve", settings.output)
    if code is not None:
        return code
    live = sys.stderr.isatty() and LEVELS[effective_log_level(args)] <= logging.WARNING
    if live and args.log_config is None:  # warnings go above the live display
        configure(effective_log_level(args), json=bool(args.log_json), stream=_Stderr())
    outcome = Outcome()
    tracker = Tracker(live=live, lines=progress_lines(args))
    try:
        with tracker:
            run_async(run, settings, outcome, tracker)
    except KeyboardInterrupt:
        outcome.interrupted = True
        outcome.error = "interrupted"
    except (AiomoveError, BaseExceptionGroup) as exc:
        leaf = _leaf(exc)
        if not isinstance(leaf, AiomoveError):
            raise
        outcome.error, outcome.code = str(leaf), exit_code_for_move(leaf)
    _write_report(args.report, outcome, settings)
    code = outcome.exit_code()
    if code == EXIT_INTERRUPTED:
        sys.stderr.write("aiomove retrieve: interrupted\n")
    elif outcome.error is not None:
        report_error("retrieve", outcome.error, code)
    elif code != EXIT_OK:
        report_error("retrieve", summary(outcome), code)
    return code
