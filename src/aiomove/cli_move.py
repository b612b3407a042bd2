"""`aiomove move` and `aiomove store-scp`: DCMTK movescu/storescp command lines, unchanged.

The arguments are parsed by `aiomove.options` (DCMTK's rules: `+`/`-` options, rightmost wins,
`@file`), turned into `MoveSettings` / a Storage SCP config, and run. Exit codes follow the
movescu manual's table; `exit_code_for_move()` is the one place that maps errors to them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydicom import Dataset

from aiomove import __version__, logconfig
from aiomove.association import Peer, Timeouts
from aiomove.errors import (
    AiomoveError,
    ListenError,
    LocalProtocolError,
)
from aiomove.exitcodes import association_exit_code
from aiomove.log import configure, configure_sinks, get_logger
from aiomove.movescu import (
    MoveOutcome,
    MoveSettings,
    Received,
    output_directory_problem,
    run_move,
)
from aiomove.options import OptionError, ParsedArgs, format_arguments, format_help, parse
from aiomove.options_security import only_moved, security_settings
from aiomove.options_specs import (
    MOVESCU,
    STORESCP,
    effective_log_level,
    move_destination,
    tls_contexts,
)
from aiomove.query import (
    Model,
    QueryError,
    build_identifier,
    friendly_identifier,
    load_query_file,
    validate,
)
from aiomove.runner import run_async
from aiomove.server import serve
from aiomove.storage import OUT_OF_RESOURCES, FileSink, OutputOptions, storage_config
from aiomove.tls import TlsError, list_ciphers, list_profiles
from aiomove.transfer import PREFER as PREFER  # re-exported: daemon.config imports it from here
from aiomove.transfer import PROPOSE, proposed_transfer_syntaxes

log = get_logger("aiomove.cli")

# movescu's exit codes (manual, "EXIT CODES").
EXIT_OK = 0
EXIT_SYNTAX = 1
EXIT_INSUFFICIENT_PRIVILEGES = 2
EXIT_CANNOT_WRITE_OUTPUT_FILE = 40
EXIT_INVALID_OUTPUT_DIRECTORY = 45
EXIT_CANNOT_INITIALIZE_NETWORK = 60
EXIT_CANNOT_NEGOTIATE_ASSOCIATION = 61
EXIT_CANNOT_CREATE_ASSOC_PARAMETERS = 65
EXIT_NO_PRESENTATION_CONTEXT = 66
EXIT_CANNOT_CLOSE_ASSOCIATION = 67
EXIT_CMOVE_WARNING = 68
EXIT_CMOVE_ERROR = 69
EXIT_CANNOT_CREATE_TLS_LAYER = 70

_WRITE_XFER = {
    "same": None,
    "little": "1.2.840.10008.1.2.1",
    "big": "1.2.840.10008.1.2.2",
    "implicit": "1.2.840.10008.1.2",
    "deflated": "1.2.840.10008.1.2.1.99",
}
#: -i4 / -i6 / -i0: where the embedded Storage SCP listens.
_LISTEN_HOST: dict[str, str | None] = {"ipv4": "0.0.0.0", "ipv6": "::", "auto": None}


def exit_code_for_move(exc: BaseException) -> int:
    """movescu's exit code for an error (the one place where this mapping lives)."""
    if isinstance(exc, OptionError | QueryError):
        return EXIT_SYNTAX
    if isinstance(exc, TlsError):
        return EXIT_CANNOT_CREATE_TLS_LAYER
    if isinstance(exc, ListenError):
        return EXIT_INSUFFICIENT_PRIVILEGES if exc.errno == 13 else EXIT_CANNOT_INITIALIZE_NETWORK
    if isinstance(exc, LocalProtocolError):  # e.g. an AE title that cannot be encoded
        return EXIT_CANNOT_CREATE_ASSOC_PARAMETERS
    code = association_exit_code(exc)
    return EXIT_CMOVE_ERROR if code is None else code


def unwritten(outcome: MoveOutcome) -> list[Received]:
    """Instances our Storage SCP refused with 0xA700: our disk is full (or failing)."""
    return [r for q in outcome.requests for r in q.received if r.status == OUT_OF_RESOURCES]


def exit_code_for_outcome(outcome: MoveOutcome) -> int:
    """40 when an instance could not be written (movescu's "cannot write output file");
    else the worst final status decides: warning 68, failure/refused 69 (Cancel counts as 0)."""
    if unwritten(outcome):
        return EXIT_CANNOT_WRITE_OUTPUT_FILE
    code = EXIT_OK
    for report in outcome.requests:
        status = report.status
        if status is None or status.is_failure:
            return EXIT_CMOVE_ERROR
        if status.is_warning:  # movescu.cc treats Cancel (0xFE00) like Success
            code = EXIT_CMOVE_WARNING
    return code


def report_error(command: str, message: str, code: int) -> int:
    # info, not error: the one-line reason below is what a person sees by default
    log.info(f"{command.replace('-', '_')}.failed", error=message, exit_code=code)
    sys.stderr.write(f"aiomove {command}: error: {message}\n")
    return code


def _output_options(args: ParsedArgs) -> OutputOptions:
    padding = tuple(args.padding) if args.padding else None
    return OutputOptions(
        bit_preserving=bool(args.bit_preserving),
        write_file=bool(args.write_file),
        transfer_syntax=_WRITE_XFER[str(args.write_xfer)],
        new_vr=bool(args.enable_new_vr),
        group_length=args.group_length,
        explicit_length=args.length_encoding == "explicit",
        padding=padding,
        compression_level=int(args.compression_level),
    )


def identifiers(args: ParsedArgs, model: Model) -> list[Dataset]:
    """One identifier per query file (or one from the keys alone), validated."""
    friendly = friendly_identifier(
        patient_id=args.patient_id,
        study_uid=args.study_uid,
        series_uid=args.series_uid,
        sop_uids=tuple(args.sop_uid or ()),
        accession=args.accession,
        level=args.level,
    )
    bases: list[Dataset | None] = [load_query_file(f) for f in args.dcmfile_in] or [None]
    result = []
    for base in bases:
        ds = build_identifier(base, list(args.keys or ()))
        ds.update(friendly)
        warnings = validate(ds, model)
        for warning in warnings:
            log.warning("query.invalid", problem=warning)
        if warnings and args.strict:
            raise QueryError("invalid query (--strict): " + "; ".join(warnings))
        result.append(ds)
    return result


def _settings(args: ParsedArgs) -> MoveSettings:
    model = Model(args.model)
    sec = security_settings(args, daemon="movescu")
    sink = None
    if args.retrieve_port is not None:
        sink = FileSink(
            Path(args.output_directory),
            options=_output_options(args),
            ignore=bool(args.ignore),
            fsync=bool(args.fsync),
            **sec["sink"],
        )
    client_tls, server_tls = tls_contexts(args, server=sink is not None)
    return MoveSettings(
        peer=Peer(str(args.peer), int(args.port), str(args.call), ssl_context=client_tls),
        identifiers=identifiers(args, model),
        ae_title=str(args.aetitle),
        destination=move_destination(args),
        model=model.move_uid,
        find_model=model.find_uid,
        proposed_transfer_syntaxes=proposed_transfer_syntaxes(PROPOSE[str(args.propose)]),
        port=args.retrieve_port,
        sink=sink,
        prefer=PREFER[str(args.prefer)],
        listen_host=_LISTEN_HOST[str(args.ip_version)],
        timeouts=Timeouts(connect=args.timeout, acse=args.acse_timeout, dimse=args.dimse_timeout),
        max_pdu_length=int(args.max_pdu),
        repeat=int(args.repeat),
        abort=bool(args.abort),
        cancel_after=args.cancel,
        linger=float(args.linger),
        pending_read=args.pending == "read",
        storage_ssl_context=server_tls,
        acceptor_options=sec["acceptor"],
        handler_options=sec["handler"],
        only_moved=only_moved(args),
    )


def start_command(spec: Any, argv: Sequence[str], command: str) -> ParsedArgs | int:
    """Parse, handle --help/--version/--arguments, configure logging; or an exit code."""
    try:
        args = parse(spec, argv)
    except OptionError as exc:
        return report_error(command, str(exc), EXIT_SYNTAX)
    if args.help:
        sys.stdout.write(format_help(spec, header=f"aiomove {__version__}") + "\n")
        return EXIT_OK
    if args.version:
        from aiomove.cli import version_text

        sys.stdout.write(version_text() + "\n")
        return EXIT_OK
    if args.tls_list_profiles or args.tls_list_ciphers:  # +ph / +cc: print and exit, as DCMTK
        sys.stdout.write((list_profiles() if args.tls_list_profiles else list_ciphers()) + "\n")
        return EXIT_OK
    if args.log_config is not None:
        try:
            level, sinks = logconfig.load(Path(args.log_config))
        except logconfig.LogConfigError as exc:
            return report_error(command, str(exc), EXIT_SYNTAX)
        configure_sinks(level, sinks)
    else:
        configure(effective_log_level(args), json=bool(args.log_json))
    if args.arguments:
        sys.stderr.write(format_arguments(args.expanded, f"aiomove {command}") + "\n")
    return args


def check_output_directory(command: str, directory: Path) -> int | None:
    """movescu: 45 when -od is not a directory, 40 when it cannot be written to."""
    problem = output_directory_problem(directory)
    if problem == "missing":
        return report_error(
            command, f"invalid output directory: {directory}", EXIT_INVALID_OUTPUT_DIRECTORY
        )
    if problem == "unwritable":
        return report_error(
            command, f"cannot write to output directory: {directory}", EXIT_CANNOT_WRITE_OUTPUT_FILE
        )
    return None


def _write_report(args: ParsedArgs, outcome: MoveOutcome) -> None:
    """`--report FILE`: JSON, also after a failure (with what was done until then)."""
    if args.report:
        Path(args.report).write_text(json.dumps(outcome.to_json(), indent=2) + "\n")


def move_main(argv: Sequence[str]) -> int:
    """`aiomove move [options] peer port [dcmfile-in...]`: the exit code."""
    started = start_command(MOVESCU, argv, "move")
    if isinstance(started, int):
        return started
    args = started
    try:
        settings = _settings(args)
    except (QueryError, OptionError, ValueError) as exc:
        return report_error("move", str(exc), EXIT_SYNTAX)
    except TlsError as exc:
        return report_error("move", str(exc), EXIT_CANNOT_CREATE_TLS_LAYER)
    sink = settings.sink
    if sink is not None and not sink.ignore:
        code = check_output_directory("move", sink.directory)
        if code is not None:
            return code
    outcome = MoveOutcome()
    try:
        run_async(run_move, settings, outcome)
    except AiomoveError as exc:
        outcome.error = str(exc)
        _write_report(args, outcome)
        return report_error("move", str(exc), exit_code_for_move(exc))
    except KeyboardInterrupt:
        outcome.error = "interrupted"
        _write_report(args, outcome)
        return 130
    _write_report(args, outcome)
    code = exit_code_for_outcome(outcome)
    if code == EXIT_CANNOT_WRITE_OUTPUT_FILE:
        where = settings.sink.directory if settings.sink is not None else "?"
        count = len(unwritten(outcome))
        report_error(
            "move",
            f"cannot write output file: {count} instance(s) refused with 0xA700 (disk full,"
            f" below --min-free-space or a write error in {where})",
            code,
        )
    elif code != EXIT_OK:
        worst = [r for r in outcome.requests if r.status is None or not r.status.is_success]
        detail = "; ".join(
            f"request {r.index}: {r.status if r.status else 'no final response'}"
            + (
                f", failed: {' '.join(r.failed_sop_instance_uids)}"
                if r.failed_sop_instance_uids
                else ""
            )
            for r in worst
        )
        report_error("move", f"C-MOVE did not succeed ({detail})", code)
    return code


def store_scp_main(argv: Sequence[str]) -> int:
    """`aiomove store-scp [options] port`: a Storage SCP until interrupted."""
    started = start_command(STORESCP, argv, "store-scp")
    if isinstance(started, int):
        return started
    args = started
    try:
        sec = security_settings(args, daemon="storescp")
    except OptionError as exc:
        return report_error("store-scp", str(exc), EXIT_SYNTAX)
    sink = FileSink(
        Path(args.output_directory),
        options=_output_options(args),
        ignore=bool(args.ignore),
        fsync=bool(args.fsync),
        **sec["sink"],
    )
    if not sink.ignore:
        code = check_output_directory("store-scp", sink.directory)
        if code is not None:
            return code
    try:
        _, ssl_context = tls_contexts(args, client=False, server=True)
    except TlsError as exc:
        return report_error("store-scp", str(exc), EXIT_CANNOT_CREATE_TLS_LAYER)
    config = storage_config(
        str(args.aetitle),
        sink,
        PREFER[str(args.prefer)],
        max_pdu_length=int(args.max_pdu),
        timeouts=Timeouts(
            acse=args.acse_timeout, dimse=args.dimse_timeout, write=args.socket_timeout or None
        ),
        ssl_context=ssl_context,
        **sec["handler"],
        **sec["acceptor"],
    )

    async def run() -> None:
        await serve(config, None, int(args.port))

    try:
        run_async(run)
    except OSError as exc:
        code = EXIT_INSUFFICIENT_PRIVILEGES if exc.errno == 13 else EXIT_CANNOT_INITIALIZE_NETWORK
        return report_error("store-scp", f"cannot listen on port {args.port}: {exc.strerror}", code)
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK
