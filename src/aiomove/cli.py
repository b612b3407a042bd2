"""The `aiomove` command line (typer). A thin layer over the library.

Options follow DCMTK's tools (`-aet`, `-aec`, `-to`, `-ta`, `-td`, `-pdu`, ...) under both their
short and long spellings, and exit codes follow DCMTK's tables; errors are mapped to exit codes
in one place, `exit_code_for()`, and reported as one line on stderr.
"""

from __future__ import annotations

import platform
import ssl
import sys
from typing import Annotated, NoReturn

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
from aiomove.log import LEVELS, configure, get_logger
from aiomove.proto import uids
from aiomove.runner import run_async
from aiomove.tls import TlsError, TlsSettings, client_context

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


def fail(command: str, exc: BaseException) -> NoReturn:
    """One line on stderr saying why, then DCMTK's exit code."""
    code = exit_code_for(exc)
    sys.stderr.write(f"aiomove {command}: error: {exc}\n")
    raise typer.Exit(code)


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


def setup_logging(
    quiet: bool, verbose: bool, debug: bool, log_level: str | None, json: bool
) -> None:
    """DCMTK's -q/-v/-d/-ll; the last one given on the command line is not tracked, the most
    specific wins: -ll, then -d, then -v, then -q; default 'warn'."""
    if log_level is not None:
        level = log_level
    elif debug:
        level = "debug"
    elif verbose:
        level = "info"
    elif quiet:
        level = "fatal"
    else:
        level = "warn"
    configure(level, json=json)


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


@app.command("echo")
def echo_command(
    peer: Annotated[
        str, typer.Argument(help="Host name or IP address (IPv4 or IPv6) of the peer.")
    ],
    port: Annotated[int, typer.Argument(help="TCP port of the peer.", min=1, max=65535)],
    aetitle: Annotated[
        str, typer.Option("-aet", "--aetitle", help="My calling AE title.")
    ] = "ECHOSCU",
    call: Annotated[
        str, typer.Option("-aec", "--call", help="Called AE title of the peer.")
    ] = "ANY-SCP",
    propose_ts: Annotated[
        int, typer.Option("-pts", "--propose-ts", min=1, max=3, help="Propose n transfer syntaxes.")
    ] = 1,
    propose_pc: Annotated[
        int,
        typer.Option(
            "-ppc", "--propose-pc", min=1, max=128, help="Propose n presentation contexts."
        ),
    ] = 1,
    timeout: Annotated[
        float | None, typer.Option("-to", "--timeout", help="Seconds for the TCP connection.")
    ] = None,
    socket_timeout: Annotated[
        float,
        typer.Option("-ts", "--socket-timeout", help="Seconds a write may block (0: none)."),
    ] = 60,
    acse_timeout: Annotated[
        float, typer.Option("-ta", "--acse-timeout", help="Seconds for ACSE messages.")
    ] = 30,
    dimse_timeout: Annotated[
        float | None, typer.Option("-td", "--dimse-timeout", help="Seconds for DIMSE messages.")
    ] = None,
    max_pdu: Annotated[
        int,
        typer.Option("-pdu", "--max-pdu", min=4096, max=131072, help="Max receive PDU in bytes."),
    ] = 16384,
    repeat: Annotated[int, typer.Option("--repeat", min=1, help="Send n C-ECHO requests.")] = 1,
    abort: Annotated[bool, typer.Option("--abort", help="Abort instead of releasing.")] = False,
    quiet: Annotated[
        bool, typer.Option("-q", "--quiet", help="Print no warnings and errors.")
    ] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Processing details.")] = False,
    debug: Annotated[bool, typer.Option("-d", "--debug", help="Debug information.")] = False,
    log_level: Annotated[
        str | None,
        typer.Option("-ll", "--log-level", help="fatal, error, warn, info, debug or trace."),
    ] = None,
    log_json: Annotated[bool, typer.Option("--log-json", help="Log as JSON lines.")] = False,
    arguments: Annotated[
        bool, typer.Option("--arguments", help="Print the expanded command line arguments.")
    ] = False,
    tls: Annotated[
        tuple[str, str] | None,
        typer.Option("+tls", "--enable-tls", help="TLS with private key and certificate files."),
    ] = None,
    anonymous_tls: Annotated[
        bool, typer.Option("+tla", "--anonymous-tls", help="TLS without a certificate.")
    ] = False,
    use_passwd: Annotated[
        str | None, typer.Option("+pw", "--use-passwd", help="Private key password.")
    ] = None,
    null_passwd: Annotated[
        bool, typer.Option("-pw", "--null-passwd", help="Empty private key password.")
    ] = False,
    der_keys: Annotated[
        bool, typer.Option("-der", "--der-keys", help="Keys and certificates are DER files.")
    ] = False,
    add_cert_file: Annotated[
        list[str] | None, typer.Option("+cf", "--add-cert-file", help="Trust this certificate.")
    ] = None,
    add_cert_dir: Annotated[
        list[str] | None,
        typer.Option("+cd", "--add-cert-dir", help="Trust certificates in this hash directory."),
    ] = None,
    add_crl_file: Annotated[
        list[str] | None,
        typer.Option("+crl", "--add-crl-file", help="Certificate revocation list (+crv)."),
    ] = None,
    crl_leaf: Annotated[
        bool, typer.Option("+crv", "--enable-crl-vfy", help="CRL check of the peer.")
    ] = False,
    crl_all: Annotated[
        bool, typer.Option("+cra", "--enable-crl-all", help="CRL check of the whole chain.")
    ] = False,
    cipher: Annotated[
        list[str] | None, typer.Option("+cs", "--cipher", help="Add a TLS 1.2 cipher suite.")
    ] = None,
    ignore_peer_cert: Annotated[
        bool, typer.Option("-ic", "--ignore-peer-cert", help="Do not verify the peer.")
    ] = False,
) -> None:
    """Verify a DICOM peer with C-ECHO (like DCMTK echoscu)."""
    if arguments:
        typer.echo("expanded command line to " + str(len(sys.argv) - 1) + " arguments:")
        for arg in sys.argv[1:]:
            typer.echo(arg)

    if log_level is not None and log_level not in LEVELS:
        sys.stderr.write(f"aiomove echo: error: invalid log level {log_level!r}\n")
        raise typer.Exit(EXIT_SYNTAX)
    setup_logging(quiet, verbose, debug, log_level, log_json)
    transfer_syntaxes = (uids.IMPLICIT_VR_LE, uids.EXPLICIT_VR_LE, uids.EXPLICIT_VR_BE)[:propose_ts]
    contexts = [(uids.VERIFICATION, transfer_syntaxes)] * propose_pc
    timeouts = Timeouts(
        connect=timeout, acse=acse_timeout, dimse=dimse_timeout, write=socket_timeout or None
    )

    given = {
        "--use-passwd": use_passwd is not None,
        "--null-passwd": null_passwd,
        "--der-keys": der_keys,
        "--add-cert-file": bool(add_cert_file),
        "--add-cert-dir": bool(add_cert_dir),
        "--add-crl-file": bool(add_crl_file),
        "--enable-crl-vfy": crl_leaf,
        "--enable-crl-all": crl_all,
        "--cipher": bool(cipher),
        "--ignore-peer-cert": ignore_peer_cert,
    }
    settings = None
    if tls is not None or anonymous_tls:
        settings = TlsSettings(
            key_file=tls[0] if tls else None,
            cert_file=tls[1] if tls else None,
            password="" if null_passwd else use_passwd,
            der=der_keys,
            ca_files=tuple(add_cert_file or ()),
            ca_dirs=tuple(add_cert_dir or ()),
            crl_files=tuple(add_crl_file or ()),
            crl_check="chain" if crl_all else "leaf" if crl_leaf else "none",
            ciphers=tuple(cipher or ()),
            peer_certificate="ignore" if ignore_peer_cert else "require",
        )
    ssl_context = _echo_tls_context(settings, given)

    async def run() -> int:
        async with connect(
            Peer(peer, port, call, ssl_context=ssl_context),
            ae_title=aetitle,
            contexts=contexts,
            max_pdu_length=max_pdu,
            timeouts=timeouts,
        ) as assoc:
            worst = EXIT_OK
            for _ in range(repeat):
                status = await assoc.echo()
                log.info("c_echo.response", status=str(status))
                if not status.is_success:
                    worst = EXIT_DIMSE_FAILURE
            if abort:
                await assoc.abort()
            return worst

    try:
        code = run_async(run)
    except AiomoveError as exc:
        fail("echo", exc)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if code == EXIT_DIMSE_FAILURE:
        sys.stderr.write("aiomove echo: error: C-ECHO answered with a non-success status\n")
    raise typer.Exit(code)


def _echo_tls_context(
    settings: TlsSettings | None, given: dict[str, bool]
) -> ssl.SSLContext | None:
    """echoscu's TLS: its checkDependence on `+tls`/`+tla`, then the context. echoscu 3.6.7
    exits 1 when its TLS layer cannot be created (its table's 70 is "association aborted")."""
    if settings is None:
        for name in (name for name, was_given in given.items() if was_given):
            sys.stderr.write(
                f"aiomove echo: error: {name} only allowed with --enable-tls or --anonymous-tls\n"
            )
            raise typer.Exit(EXIT_SYNTAX)
        return None
    try:
        return client_context(settings)
    except TlsError as exc:
        sys.stderr.write(f"aiomove echo: error: {exc}\n")
        raise typer.Exit(EXIT_SYNTAX) from None


_RAW = {
    "ignore_unknown_options": True,
    "allow_extra_args": True,
    "allow_interspersed_args": False,
    "help_option_names": [],
}


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
