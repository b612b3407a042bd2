"""The option table of `aiomove retrieve`, built from options_specs' helpers."""

from __future__ import annotations

import os

from aiomove.options import (
    CommandSpec,
    Int,
    OptionError,
    OptionSpec,
    ParamSpec,
    ParsedArgs,
    Str,
)
from aiomove.options_security import SECURITY_DEFAULTS, security_options
from aiomove.options_specs import (
    _ACCESS,
    _PREFER,
    _TLS_DEFAULT_VALUES,
    _general,
    _table,
    _tls,
    _with,
    check_logging,
    check_tls,
)

# --- aiomove retrieve ------------------------------------------------------------------------

_RETRIEVE_NETWORK = """
# network options
[query keys (studies to retrieve)] keys
-k    --key      @str*  [k]ey: gggg,eeee="str" or dict. name="str"
  |C-FIND key (STUDY level, study root) selecting
  the studies to retrieve
[retrieve information model] model
-S    --study    study    use study root information model (default)
-P    --patient  patient  use patient root information model
[application entity titles] *
-aet  --aetitle  @str  [a]etitle: string|set my calling AE title and move destination
  (default: AIOMOVE)
-aec  --call     @str  [a]etitle: string|set called AE title of peer (default: ANY-SCP)
[preferred network transfer syntaxes (incoming associations)] prefer
{prefer}
{access}
[port for incoming network associations (required)] retrieve_port
+P    --port     @port  [n]umber: integer|port number for incoming associations
[other network options] *
-to   --timeout       @seconds  [s]econds: integer (default: unlimited)
  |timeout for connection requests
-ta   --acse-timeout  @seconds  [s]econds: integer (default: 30)|timeout for ACSE messages
-td   --dimse-timeout @seconds  [s]econds: integer (default: unlimited)
  |timeout for DIMSE messages
-pdu  --max-pdu       @pdu  [n]umber of bytes: integer (4096..131072)
  |set max receive pdu to n bytes (default: 16384)
-dhl  --disable-host-lookup  True  disable hostname lookup
"""

_RETRIEVE_INPUT = """
# input options
[] *
.   --input        @str  [f]ilename: string|CSV file whose header names a StudyInstanceUID,
  AccessionNumber or PatientID column, or a list
  of keys, one per line
.   --key-type     @str  [t]ype: string constant|(study, accession, patient)
  what the keys of --input are (default: the
  CSV column, else study)
# output options
[] *
-od --output-directory  @str  [d]irectory: string (default: ".")
  |write received objects below existing directory d
.   --layout       @str  [t]emplate: string|relative path of each instance, DICOM keywords
  in braces (default: {PatientID}/
  {StudyInstanceUID}/{SeriesInstanceUID}/
  {SOPInstanceUID}.dcm)
.   --report       @str  [f]ilename: string|write a JSON report to file f
.   --fsync        True  fsync each received file before answering
  (durable across power loss; slower)
# retrieve options
[] *
.   --concurrency  @str  [n]umber: integer (default: 4)
  |retrieve n studies at once (associations per peer)
.   --linger       @linger  [s]econds: float (default: 5)
  |wait up to s seconds for instances a source
  reported before delivering them
.   --log-json     True  log as JSON lines
"""


def check_retrieve(args: ParsedArgs) -> None:
    """What `aiomove retrieve` needs: a port, and exactly one of --input and -k."""
    check_logging(args)
    if args.retrieve_port is None:
        raise OptionError("--port is required (the port of the embedded Storage SCP)")
    if args.input is not None and args.keys:
        raise OptionError("--input not allowed with --key")
    if args.input is None and not args.keys:
        raise OptionError("either --input or --key must be specified")
    if args.key_type is not None and args.input is None:
        raise OptionError("--key-type only allowed with --input")
    if args.input is not None and not os.access(args.input, os.R_OK):
        raise OptionError(f"cannot access file: {args.input}")


def _retrieve_options() -> tuple[OptionSpec, ...]:
    options = (
        *_general(),
        *_table(
            _RETRIEVE_NETWORK.format(
                prefer=_PREFER.format(deflated="prefer deflated TS"), access=_ACCESS
            )
        ),
        *_tls(),  # movescu's: one set for the outgoing associations and the Storage SCP
        *_table(_RETRIEVE_INPUT),
        *security_options(move=True),  # the embedded Storage SCP's, as `aiomove move`'s
    )
    key_type = Str(("study", "accession", "patient"), fold="lower")
    options = _with(options, "--key-type", values=(key_type,))
    return _with(options, "--concurrency", values=(Int(1, 64, unsigned=True),))


RETRIEVE = CommandSpec(
    name="aiomove retrieve",
    description="retrieve studies (C-FIND + C-MOVE) into a directory layout, resumably",
    params=(
        ParamSpec("peer", "hostname of DICOM peer"),
        ParamSpec("port", "tcp/ip port number of peer", Int(1, 65535)),
    ),
    options=_retrieve_options(),
    defaults={
        "model": "study",
        "aetitle": "AIOMOVE",
        "call": "ANY-SCP",
        "prefer": "uncompressed",
        "retrieve_port": None,
        "timeout": None,
        "acse_timeout": 30.0,
        "dimse_timeout": None,
        "max_pdu": 16384,
        "output_directory": ".",
        "concurrency": 4,
        "linger": 5.0,
        "access_control": False,
        **_TLS_DEFAULT_VALUES,
        **SECURITY_DEFAULTS,
    },
    checks=(check_retrieve, check_tls),
)
