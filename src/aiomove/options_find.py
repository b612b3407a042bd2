"""The option tables of `aiomove find` (DCMTK findscu) and `aiomove echo` (echoscu), built from
options_specs' helpers. Both are requestors with findscu's TLS options (`+tla` included)."""

from __future__ import annotations

import os
from dataclasses import replace

from aiomove.options import (
    CommandSpec,
    Int,
    OptionError,
    OptionSpec,
    ParamSpec,
    ParsedArgs,
)
from aiomove.options_specs import (
    _TLS_DEFAULT_VALUES,
    _general,
    _table,
    _tls,
    _with,
    check_logging,
    check_tls_anonymous,
)

# --- aiomove find ----------------------------------------------------------------------------

#: findscu's and echoscu's "other network options" (the same rows in both helps).
_OTHER_NETWORK = """
-to   --timeout         @seconds  [s]econds: integer (default: unlimited)
  |timeout for connection requests
-ts   --socket-timeout  @socket-seconds  [s]econds: integer (default: 60)
  |timeout for network socket (0 for none)
-ta   --acse-timeout    @seconds  [s]econds: integer (default: 30)|timeout for ACSE messages
-td   --dimse-timeout   @seconds  [s]econds: integer (default: unlimited)
  |timeout for DIMSE messages
-pdu  --max-pdu         @pdu  [n]umber of bytes: integer (4096..131072)
  |set max receive pdu to n bytes (default: 16384)
.     --repeat          @repeat  [n]umber: integer|repeat n times
.     --abort           True     abort association instead of releasing it
"""

_FINDSCU_NETWORK = """
# network options
[override matching keys] keys
-k    --key      @str*  [k]ey: gggg,eeee="str", path or dict. name="str"|override matching key
[query information model] model
-W    --worklist  worklist  use modality worklist information model (def.)
-P    --patient   patient   use patient root information model
-S    --study     study     use study root information model
-O    --psonly    psonly    use patient/study only information model
[application entity titles] *
-aet  --aetitle  @str  [a]etitle: string|set my calling AE title (default: FINDSCU)
-aec  --call     @str  [a]etitle: string|set called AE title of peer (default: ANY-SCP)
[post-1993 value representations] enable_new_vr
+u    --enable-new-vr   True   enable support for new VRs (UN/UT) (default)
-u    --disable-new-vr  False  disable support for new VRs, convert to OB
[proposed transmission transfer syntaxes] propose
-x=   --propose-uncompr   uncompressed  propose all uncompressed TS, explicit VR
  with local byte ordering first (default)
-xe   --propose-little    little  propose all uncompressed TS, explicit VR
  little endian first
-xb   --propose-big       big     propose all uncompressed TS, explicit VR
  big endian first
-xd   --propose-deflated  deflated  propose deflated explicit VR little endian TS
  and all uncompressed transfer syntaxes
-xi   --propose-implicit  implicit  propose implicit VR little endian TS only
[deflate compression level (only with --propose-deflated)] compression_level
+cl   --compression-level  @level  [l]evel: integer (default: 6)
  |0=uncompressed, 1=fastest, 9=best compression
[other network options] *
{other}
.     --cancel          @cancel  [n]umber: integer|cancel after n responses (default: never)
"""

_FINDSCU_OUTPUT = """
# output options
[general] output_directory
-od   --output-directory    @str  [d]irectory: string (default: ".")
  |write output files to existing directory d
[automatic data correction] data_correction
+dc   --enable-correction   True   enable automatic data correction
-dc   --disable-correction  False  disable automatic data correction (default)
[C-FIND responses] show_responses
+sr   --show-responses      True   always output responses to the logger
-sr   --hide-responses      False  do not output responses to the logger
[C-FIND responses] extract
-X    --extract             dicom  extract responses to DICOM file (rsp0001.dcm...)
-Xx   --extract-xml         xml    extract responses to XML file (rsp0001.xml...)
-Xs   --extract-xml-single  @str   [f]ilename: string
  |extract all responses to given XML file f
[C-FIND responses] limit_output
-Xlo  --limit-output        @repeat  [n]umber: integer
  |limit number of responses extracted to file to n
  (default: unlimited)
"""

_FINDSCU_EXTENSIONS = """
# aiomove extensions
[] *
.  --patient-id  @str  [i]d: string|match Patient ID i
.  --study-uid   @str  [u]id: string|match Study Instance UID u
.  --series-uid  @str  [u]id: string|match Series Instance UID u
.  --accession   @str  [n]umber: string|match Accession Number n
.  --level       @qr-level  [l]evel: string constant|(PATIENT, STUDY, SERIES, IMAGE)
  Query/Retrieve Level (default: from the
  most specific of the options above)
[matches on standard output] output_format
.  --json        json  one DICOM JSON object per match and line
.  --csv         csv   CSV: a header row, then one row per match
[] *
.  --fields      @str  [k]eywords: string|comma-separated keywords or tags: the CSV
  columns (default: the query's keys) and the
  JSON members (default: all); those missing
  are added to the query as return keys
.  --log-json    True  log as JSON lines
"""

#: findscu's options that aiomove recognises but cannot honour (refused with these messages).
_FINDSCU_UNSUPPORTED = {
    "--disable-new-vr": "--disable-new-vr is not supported: aiomove keeps UN/UT and the newer VRs",
    "--enable-correction": "--enable-correction is not supported: query files are read as is",
    "--extract-xml": "XML output is not supported: use --extract or --json",
    "--extract-xml-single": "XML output is not supported: use --extract or --json",
}


#: findscu's TLS option that movescu's list lacks (an SCU without a certificate): one more
#: choice of `tls_identity`, the empty identity.
_ANONYMOUS_TLS = "+tla  --anonymous-tls  True  use secure TLS connection without certificate"


def _findscu_tls() -> tuple[OptionSpec, ...]:
    """movescu's TLS options with findscu's `+tla` after `+tls`."""
    tls = _tls()
    at = next(i for i, o in enumerate(tls) if o.long == "--enable-tls")
    anonymous = replace(
        _table("[] *\n" + _ANONYMOUS_TLS)[0],
        dest="tls_identity",
        const=(),
        group=tls[at].group,
        subgroup=tls[at].subgroup,
    )
    return (*tls[: at + 1], anonymous, *tls[at + 1 :])


def _findscu_options() -> tuple[OptionSpec, ...]:
    options = (
        *_general(),
        *_table(_FINDSCU_NETWORK.format(other=_OTHER_NETWORK.strip("\n"))),
        *_findscu_tls(),
        *_table(_FINDSCU_OUTPUT),
        *_table(_FINDSCU_EXTENSIONS),
    )
    for long, message in _FINDSCU_UNSUPPORTED.items():
        options = _with(options, long, unsupported=message)
    return options


def check_findscu(args: ParsedArgs) -> None:
    """findscu.cc's checks after the values, in its order, plus aiomove's own."""
    check_logging(args)
    if args.given("compression_level") and args.propose != "deflated":
        raise OptionError("--compression-level only allowed with --propose-deflated")
    if args.given("limit_output") and args.extract is None:
        raise OptionError(
            "--limit-output only allowed with --extract, --extract-xml or --extract-xml-single"
        )
    for name in args.dcmfile_in:
        if not os.access(name, os.R_OK):
            raise OptionError(f"cannot access file: {name}")
    friendly = ("patient_id", "study_uid", "series_uid", "accession")
    if not (args.dcmfile_in or args.keys or any(args[k] for k in friendly)):
        raise OptionError("either query file or override keys (or both) must be specified")
    if args.model == "worklist" and args.level is not None:
        raise OptionError("--level not allowed with --worklist (use -P, -S or -O)")
    if args.given("fields") and args.output_format is None:
        raise OptionError("--fields only allowed with --json or --csv")


FINDSCU = CommandSpec(
    name="aiomove find",
    description="DICOM query (C-FIND) SCU",
    params=(
        ParamSpec("peer", "hostname of DICOM peer"),
        ParamSpec("port", "tcp/ip port number of peer", Int(1, 65535)),
        ParamSpec("dcmfile-in", "DICOM query file(s)", optional=True, variadic=True),
    ),
    options=_findscu_options(),
    defaults={
        "model": "worklist",
        "aetitle": "FINDSCU",
        "call": "ANY-SCP",
        "enable_new_vr": True,
        "propose": "uncompressed",
        "compression_level": 6,
        "timeout": None,
        "socket_timeout": 60.0,
        "acse_timeout": 30.0,
        "dimse_timeout": None,
        "max_pdu": 16384,
        "repeat": 1,
        "cancel": None,
        "output_directory": ".",
        "data_correction": False,
        "show_responses": None,
        "extract": None,
        "limit_output": None,
        "output_format": None,
        **_TLS_DEFAULT_VALUES,
    },
    checks=(check_findscu, check_tls_anonymous),
    long_column=20,  # the longest long option, so that every section aligns
)


# --- aiomove echo ----------------------------------------------------------------------------

_ECHOSCU_NETWORK = """
# network options
[application entity titles] *
-aet  --aetitle         @str  [a]etitle: string|set my calling AE title (default: ECHOSCU)
-aec  --call            @str  [a]etitle: string|set called AE title of peer (default: ANY-SCP)
[association negotiation debugging] *
-pts  --propose-ts      @propose-ts  [n]umber: integer (1..3)|propose n transfer syntaxes
-ppc  --propose-pc      @propose-pc  [n]umber: integer (1..128)|propose n presentation contexts
[other network options] *
{other}
"""

ECHOSCU = CommandSpec(
    name="aiomove echo",
    description="DICOM verification (C-ECHO) SCU",
    params=(
        ParamSpec("peer", "hostname of DICOM peer"),
        ParamSpec("port", "tcp/ip port number of peer", Int(1, 65535)),
    ),
    options=(
        *_general(),
        *_table(_ECHOSCU_NETWORK.format(other=_OTHER_NETWORK.strip("\n"))),
        *_findscu_tls(),
        *_table("# aiomove extensions\n[] *\n.  --log-json  True  log as JSON lines"),
    ),
    defaults={
        "aetitle": "ECHOSCU",
        "call": "ANY-SCP",
        "propose_ts": 1,
        "propose_pc": 1,
        "timeout": None,
        "socket_timeout": 60.0,
        "acse_timeout": 30.0,
        "dimse_timeout": None,
        "max_pdu": 16384,
        "repeat": 1,
        **_TLS_DEFAULT_VALUES,
    },
    checks=(check_logging, check_tls_anonymous),
    long_column=19,  # echoscu's: its longest long option
)
