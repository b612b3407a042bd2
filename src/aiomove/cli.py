"""The `aiomove` command line (typer). A thin layer over the library.

Options follow DCMTK's tools (`-aet`, `-aec`, `-to`, `-ta`, `-td`, `-pdu`, ...) under both their
short and long spellings, and exit codes follow DCMTK's tables; errors are mapped to exit codes
in one place, `exit_code_for()`, and reported as one line on stderr.
"""

from __future__ import annotations

import platform
import ssl
import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from aiomove import __version__
from aiomove.association import Peer, Timeouts, connect
from aiomove.errors import (
    AiomoveError,
    AssociationAborted,
    AssociationError,
    DimseTimeout,
    ProtocolError,
    TransportError,
)
from aiomove.exitcodes import association_exit_code
from aiomove.log import configure, get_logger
from aiomove.options_specs import tls_contexts
from aiomove.proto import uids
from aiomove.runner import run_async
from aiomove.tls import TlsError

# DCMTK exit codes (movescu/echoscu manuals, "EXIT CODES").
EXIT_OK = 0
EXIT_SYNTAX = 1
EXIT_CANNOT_INITIALIZE_NETWORK = 60
EXIT_CANNOT_NEGOTIATE_ASSOCIATION = 61
EXIT_NO_PRESENTATION_CONTEXT = 66
EXIT_CANNOT_CLOSE_ASSOCIATION = 67
EXIT_DIMSE_FAILURE = 69
EXIT_ASSOCIATION_ABORTED = 70  # echoscu's table

log = get_logger("aiomove.cli")

app = typer.Typer(
    name="aiomove",
    help="aiomove: an asyncio-native DICOM retrieve service (C-MOVE SCU + Storage SCP).",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def exit_code_for(exc: BaseException) -> int:
    """The DCMTK exit code for an error (the single place where this mapping lives)."""
    code = association_exit_code(exc)
    if code is not None:
        return code
    if isinstance(exc, AssociationAborted | DimseTimeout | TransportError | ProtocolError):
        return EXIT_ASSOCIATION_ABORTED
    if isinstance(exc, AssociationError):
        return EXIT_CANNOT_NEGOTIATE_ASSOCIATION
    return EXIT_SYNTAX


def version_text() -> str:
    """`--version`: our version, the versions we run on, and compiled-in features."""
    deps = ", ".join(
        f"{name} {_dist_version(name)}" for name in ("pydicom", "anyio", "typer", "structlog")
    )
    return (
        f"aiomove {__version__}\n"
        f"  python {platform.python_version()}, {deps}\n"
        "  features: IPv4, IPv6, C-ECHO SCU/SCP, C-MOVE SCU, Storage SCP, zlib (deflate); TLS: "
        + ssl.OPENSSL_VERSION
    )


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(version_text())
        raise typer.Exit(EXIT_OK)


@app.callback()
def main_callback(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print versions and features, then exit.",
            callback=_version_callback,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """aiomove: DICOM C-MOVE SCU with an embedded async Storage SCP."""


_RAW = {
    "ignore_unknown_options": True,
    "allow_extra_args": True,
    "allow_interspersed_args": False,
    "help_option_names": [],
}


@app.command("echo", context_settings=_RAW, add_help_option=False)
def echo_command(ctx: typer.Context) -> None:
    """Verify a DICOM peer with C-ECHO (DCMTK echoscu's options; `aiomove echo -h`)."""
    raise typer.Exit(echo_main(ctx.args))


def echo_main(argv: Sequence[str]) -> int:
    """`aiomove echo [options] peer port`: the exit code (echoscu's table, `exit_code_for`)."""
    from aiomove.cli_move import report_error, start_command
    from aiomove.options_find import ECHOSCU

    started = start_command(ECHOSCU, argv, "echo")
    if isinstance(started, int):
        return started
    args = started
    try:
        ssl_context, _ = tls_contexts(args)
    except TlsError as exc:  # echoscu 3.6.7 exits 1 here (its 70 is "association aborted")
        return report_error("echo", str(exc), EXIT_SYNTAX)
    syntaxes = (uids.IMPLICIT_VR_LE, uids.EXPLICIT_VR_LE, uids.EXPLICIT_VR_BE)[: args.propose_ts]
    timeouts = Timeouts(
        connect=args.timeout,
        acse=args.acse_timeout,
        dimse=args.dimse_timeout,
        write=args.socket_timeout or None,
    )

    async def run() -> int:
        async with connect(
            Peer(str(args.peer), int(args.port), str(args.call), ssl_context=ssl_context),
            ae_title=str(args.aetitle),
            contexts=[(uids.VERIFICATION, syntaxes)] * int(args.propose_pc),
            max_pdu_length=int(args.max_pdu),
            timeouts=timeouts,
        ) as assoc:
            worst = EXIT_OK
            for _ in range(int(args.repeat)):
                status = await assoc.echo()
                log.info("c_echo.response", status=str(status))
                if not status.is_success:
                    worst = EXIT_DIMSE_FAILURE
            if args.abort:
                await assoc.abort()
            return worst

    try:
        code = run_async(run)
    except AiomoveError as exc:
        return report_error("echo", str(exc), exit_code_for(exc))
    except KeyboardInterrupt:
        return 130
    if code == EXIT_DIMSE_FAILURE:
        return report_error("echo", "C-ECHO answered with a non-success status", code)
    return code


@app.command("move", context_settings=_RAW, add_help_option=False)
def move_command(ctx: typer.Context) -> None:
    """Retrieve with C-MOVE, receiving with an embedded Storage SCP (DCMTK movescu's options;
    `aiomove move -h` lists them)."""
    from aiomove.cli_move import move_main

    raise typer.Exit(move_main(ctx.args))


@app.command("find", context_settings=_RAW, add_help_option=False)
def find_command(ctx: typer.Context) -> None:
    """Query with C-FIND; matches also as JSON or CSV (findscu's options: `aiomove find -h`)."""
    from aiomove.cli_find import find_main

    raise typer.Exit(find_main(ctx.args))


@app.command("retrieve", context_settings=_RAW, add_help_option=False)
def retrieve_command(ctx: typer.Context) -> None:
    """Retrieve many studies (list, accession numbers, patient IDs or a C-FIND query) into a
    directory layout, concurrently and resumably (`aiomove retrieve -h` lists the options)."""
    from aiomove.cli_retrieve import retrieve_main

    raise typer.Exit(retrieve_main(ctx.args))


@app.command("store-scp", context_settings=_RAW, add_help_option=False)
def store_scp_command(ctx: typer.Context) -> None:
    """Run the Storage SCP on its own (DCMTK storescp's core options; `-h` lists them)."""
    from aiomove.cli_move import store_scp_main

    raise typer.Exit(store_scp_main(ctx.args))


from aiomove.cli_daemon import register as _register_daemon_commands  # noqa: E402

_register_daemon_commands(app)


def main() -> None:
    """Console-script entry point: usage errors exit 1, as DCMTK's syntax errors do."""
    # Until a command configures logging from its options, warnings go to stderr: structlog's
    # own default would print every level to stdout, mixing logs into --json/--csv output.
    configure("warn")
    try:
        code = app(standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:
        # typer's (vendored) click exceptions: usage errors carry exit_code 2 and a message.
        if not (hasattr(exc, "format_message") and hasattr(exc, "exit_code")):
            raise
        sys.stderr.write(f"aiomove: error: {exc.format_message()}\n")
        ctx = getattr(exc, "ctx", None)
        if ctx is not None:
            sys.stderr.write(f"try '{ctx.command_path} --help'\n")
        sys.exit(EXIT_SYNTAX if exc.exit_code == 2 else int(exc.exit_code))
    sys.exit(code if isinstance(code, int) else EXIT_OK)
