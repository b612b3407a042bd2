"""The option tables of `aiomove move` (DCMTK movescu) and `aiomove store-scp` (storescp).

Wording, defaults and value ranges are movescu/storescp 3.6.7's (`movescu --help`, and
dcmnet/apps/movescu.cc for what the help does not say), plus the options of the newer manual
(`-i4`/`-i6`/`-i0`, TLS). Conflicts are DCMTK's `checkConflict`/`checkDependence` calls, with
DCMTK's messages, evaluated on the effective (rightmost) settings.

The tables are written the way `--help` prints them (see `_table`), so that they can be read
side by side with DCMTK's help. Choices made here:
- TLS options (the newer manual's, also on `aiomove store-scp`, `find` and `echo`) become
  `TlsSettings` (`tls_settings()`) and contexts (`tls_contexts()`); what Python's ssl
  cannot do is refused by `aiomove.tls` when the context is built (exit 70).
- `+ac` enforces hosts_access(5) rules (`aiomove.accesscontrol`); it and the other access
  control and limit options of the embedded Storage SCP are `aiomove.options_security`'s.
- `-aem` defaults to None: movescu then uses its own calling AE title (`move_destination()`).
- `+P` sets `retrieve_port` (DCMTK's opt_retrievePort); the `port` parameter is the peer's.
- Seconds (`-to`, `-ta`, `-td`, `-ts`, `--linger`) may be fractional; DCMTK truncates them.
- Transfer-syntax preferences are stored as the long option's suffix ("uncompressed", "little",
  "jpeg8", ..., "accept-all"): the caller maps them to its own enum.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import replace
from typing import Any

from aiomove.options import (
    CommandSpec,
    Float,
    Int,
    OptionError,
    OptionSpec,
    ParamSpec,
    ParsedArgs,
    Str,
    ValueType,
)
from aiomove.options_security import SECURITY_DEFAULTS, security_options
from aiomove.tls import TlsSettings, ask_password_once, client_context, server_context

LOG_LEVELS = ("fatal", "error", "warn", "info", "debug", "trace")

#: Value types a table row names with "@name" ("@name*": repeatable).
_TYPES: dict[str, tuple[ValueType, ...]] = {
    "str": (Str(),),
    "str2": (Str(), Str()),
    # DCMTK: getValueAndCheckMin(t, 1) on an integer; aiomove also takes fractions.
    "seconds": (Float(min=0, min_exclusive=True),),
    "socket-seconds": (Float(min=-1),),
    "linger": (Float(min=0),),
    "port": (Int(1, 65535, unsigned=True),),
    "pdu": (Int(4096, 131072, unsigned=True),),
    "repeat": (Int(min=1, unsigned=True),),
    "propose-ts": (Int(1, 3, unsigned=True),),  # echoscu: 1..38; aiomove has the uncompressed 3
    "propose-pc": (Int(1, 128, unsigned=True),),
    "cancel": (Int(min=0),),
    "padding": (Int(min=0, unsigned=True), Int(min=0, unsigned=True)),
    "level": (Int(0, 9, unsigned=True),),
    "log-level": (Str(LOG_LEVELS, fold="lower", error="Invalid log level for --log-level option"),),
    "qr-level": (Str(("PATIENT", "STUDY", "SERIES", "IMAGE"), fold="upper"),),
}
_CONSTS: dict[str, Any] = {"True": True, "False": False, "None": None}


def _table(text: str, **changes: Any) -> tuple[OptionSpec, ...]:
    """Options from a table laid out like DCMTK's help:

    `# group` starts a group; `[subgroup] dest` a subgroup whose options set `dest` ("*": each
    option its own, from the long name); a row is `short long what text`, where short "." is
    none, `what` is True/False/None/a string constant for a flag or `@type` for a value, and
    text is `metavar|help` or `help`; indented lines continue the text on a new line.
    """
    rows: list[list[str]] = []
    group = subgroup = dest = ""
    for line in text.strip("\n").splitlines():
        if not line.strip():
            continue
        if line.startswith("# "):
            group = line[2:]
        elif line.startswith("["):
            subgroup, _, dest = line[1:].partition("] ")
        elif line.startswith(" "):
            rows[-1][-1] += "\n" + line.strip()
        else:
            short, long, what, rest = line.split(maxsplit=3)
            rows.append([group, subgroup, dest, short, long, what, rest])
    return tuple(replace(_row(*row), **changes) for row in rows)


def _row(
    group: str, sub: str, dest: str, short: str, long: str, what: str, text: str
) -> OptionSpec:
    metavar, _, help_text = text.rpartition("|")
    values: tuple[ValueType, ...] = ()
    const: Any = True
    if what.startswith("@"):
        values = _TYPES[what[1:].rstrip("*")]
    else:
        const = _CONSTS.get(what, what)
    return OptionSpec(
        "" if short == "." else short,
        long,
        long[2:].replace("-", "_") if dest == "*" else dest,
        help_text.strip(),
        const=const,
        values=values,
        metavar=metavar.strip(),
        repeatable=what.endswith("*"),
        group=group,
        subgroup=sub,
    )


def _with(options: tuple[OptionSpec, ...], long: str, **changes: Any) -> tuple[OptionSpec, ...]:
    """`options` with the one spelled `long` changed."""
    return tuple(replace(o, **changes) if o.long == long else o for o in options)


# --- shared sections -------------------------------------------------------------------------

_GENERAL = """
# general options
[] *
-h    --help         True  print this help text and exit
.     --version      True  print version information and exit
.     --arguments    True  print expanded command line arguments
[] verbosity
-q    --quiet        quiet    quiet mode, print no warnings and errors
-v    --verbose      verbose  verbose mode, print processing details
-d    --debug        debug    debug mode, print debug information
[] log_level
-ll   --log-level    @log-level  [l]evel: string constant|(fatal, error, warn, info, debug, trace)
  use level l for the logger
[] log_config
-lc   --log-config   @str  [f]ilename: string|use config file f for the logger
"""


def _general(extra: str = "") -> tuple[OptionSpec, ...]:
    """DCMTK's general options (OFConsoleApplication + OFLog::addOptions)."""
    options = _table(_GENERAL + extra)
    options = _with(options, "--help", exclusive=True)
    return _with(options, "--version", exclusive=True)


_PREFER = """
+x=  --prefer-uncompr       uncompressed  prefer explicit VR local byte order (default)
+xe  --prefer-little        little        prefer explicit VR little endian TS
+xb  --prefer-big           big           prefer explicit VR big endian TS
+xs  --prefer-lossless      lossless      prefer default JPEG lossless TS
+xy  --prefer-jpeg8         jpeg8         prefer default JPEG lossy TS for 8 bit data
+xx  --prefer-jpeg12        jpeg12        prefer default JPEG lossy TS for 12 bit data
+xv  --prefer-j2k-lossless  j2k-lossless  prefer JPEG 2000 lossless TS
+xw  --prefer-j2k-lossy     j2k-lossy     prefer JPEG 2000 lossy TS
+xt  --prefer-jls-lossless  jls-lossless  prefer JPEG-LS lossless TS
+xu  --prefer-jls-lossy     jls-lossy     prefer JPEG-LS lossy TS
+xm  --prefer-mpeg2         mpeg2         prefer MPEG2 Main Profile @ Main Level TS
+xh  --prefer-mpeg2-high    mpeg2-high    prefer MPEG2 Main Profile @ High Level TS
+xn  --prefer-mpeg4         mpeg4         prefer MPEG4 AVC/H.264 HP / Level 4.1 TS
+xl  --prefer-mpeg4-bd      mpeg4-bd      prefer MPEG4 AVC/H.264 BD-compatible TS
+x2  --prefer-mpeg4-2-2d    mpeg4-2-2d    prefer MPEG4 AVC/H.264 HP / Level 4.2 TS (2D)
+x3  --prefer-mpeg4-2-3d    mpeg4-2-3d    prefer MPEG4 AVC/H.264 HP / Level 4.2 TS (3D)
+xo  --prefer-mpeg4-2-st    mpeg4-2-st    prefer MPEG4 AVC/H.264 Stereo HP / Level 4.2 TS
+x4  --prefer-hevc          hevc          prefer HEVC/H.265 Main Profile / Level 5.1 TS
+x5  --prefer-hevc10        hevc10        prefer HEVC/H.265 Main 10 Profile / Level 5.1 TS
+xr  --prefer-rle           rle           prefer RLE lossless TS
+xd  --prefer-deflated      deflated      {deflated}
+xi  --implicit             implicit      accept implicit VR little endian TS only
+xa  --accept-all           accept-all    accept all supported transfer syntaxes
"""

#: Preferences for compressed syntaxes: received data cannot be written in another syntax.
COMPRESSED_PREFERENCES = frozenset(
    {
        *("lossless", "jpeg8", "jpeg12", "j2k-lossless", "j2k-lossy", "jls-lossless"),
        *("jls-lossy", "mpeg2", "mpeg2-high", "mpeg4", "mpeg4-bd", "mpeg4-2-2d"),
        *("mpeg4-2-3d", "mpeg4-2-st", "hevc", "hevc10", "rle"),
    }
)

_ACCESS = """
[network host access control (tcp wrapper)] access_control
-ac  --access-full     False  accept connections from any host (default)
+ac  --access-control  True   enforce host access control rules
"""


_TLS = """
# transport layer security (TLS) options
[transport protocol stack] tls_identity
-tls  --disable-tls        None   use normal TCP/IP connection (default)
+tls  --enable-tls         @str2  [p]rivate key file, [c]ertificate file: string
  |use authenticated secure TLS connection
[private key password (only with --enable-tls)] tls_password
+ps   --std-passwd         None  prompt user to type password on stdin (default)
+pw   --use-passwd         @str  [p]assword: string|use specified password
-pw   --null-passwd        EMPTY  use empty string as password
[key and certificate file format] tls_format
-pem  --pem-keys           pem  read keys and certificates as PEM file (default)
-der  --der-keys           der  read keys and certificates as DER file
[certification authority] *
+cf   --add-cert-file      @str*  [f]ilename: string|add certificate file to list of certificates
+cd   --add-cert-dir       @str*  [d]irectory: string|add certificates in d to list of certificates
+crl  --add-crl-file       @str*  [f]ilename: string|add certificate revocation list file
  (implies --enable-crl-vfy)
[certification authority] tls_crl_check
+crv  --enable-crl-vfy     leaf   enable leaf CRL verification
+cra  --enable-crl-all     chain  enable full chain CRL verification
[security profile] *
+ph   --list-profiles      True  list supported TLS profiles and exit
[security profile] tls_profile
+pg   --profile-8996       8996       BCP 195 RFC 8996 TLS Profile (default)
+pm   --profile-8996-mod   8996-mod   Modified BCP 195 RFC 8996 TLS Profile
+py   --profile-bcp195-nd  bcp195-nd  Non-downgrading BCP 195 TLS Profile (retired)
+px   --profile-bcp195     bcp195     BCP 195 TLS Profile (retired)
+pz   --profile-bcp195-ex  bcp195-ex  Extended BCP 195 TLS Profile (retired)
+pb   --profile-basic      basic      Basic TLS Secure Transport Connection Profile
  (retired)
+pa   --profile-aes        aes        AES TLS Secure Transport Connection Profile
  (retired)
+pn   --profile-null       null       Authenticated unencrypted communication
  (retired, was used in IHE ATNA)
[ciphersuite] *
+cc   --list-ciphers       True   show list of supported TLS ciphersuites and exit
+cs   --cipher             @str*  [c]iphersuite name: string
  |add ciphersuite to list of negotiated suites
+dp   --dhparam            @str   [f]ilename: string|read DH parameters for DH/DSS ciphersuites
[server name indication] tls_sni
.     --no-sni             None  do not use SNI (default)
.     --expect-sni         @str  [s]erver name: string|expect requests for server name s
[pseudo random generator] *
+rs   --seed               @str  [f]ilename: string|seed random generator with contents of f
+ws   --write-seed         True  write back modified seed (only with --seed)
+wf   --write-seed-file    @str  [f]ilename: string (only with --seed)|write modified seed to file f
[peer authentication] tls_peer_cert
-rc   --require-peer-cert  require  verify peer certificate, fail if absent (default)
-vc   --verify-peer-cert   verify   verify peer certificate if present
-ic   --ignore-peer-cert   ignore   don't verify peer certificate
"""


def _tls() -> tuple[OptionSpec, ...]:
    """The TLS options of the newer movescu manual (dcmtls/libsrc/tlsopt.cc). Each setting
    is named `tls_...`; `+ph`/`+cc` are exclusive like `--help` (they print a list and exit)."""
    options = tuple(
        o if o.dest.startswith("tls_") else replace(o, dest="tls_" + o.dest) for o in _table(_TLS)
    )
    options = _with(options, "--null-passwd", const="")
    options = _with(options, "--list-profiles", exclusive=True)
    return _with(options, "--list-ciphers", exclusive=True)


_TLS_DEFAULT_VALUES: dict[str, Any] = {
    "tls_identity": None,
    "tls_password": None,
    "tls_format": "pem",
    "tls_crl_check": "none",
    "tls_profile": "8996",
    "tls_sni": None,
    "tls_peer_cert": "require",
}
#: The TLS options that need `+tls` (DCMTK's checkDependence on --enable-tls).
_TLS_NEEDS_ENABLE = (
    *("tls_password", "tls_format", "tls_add_cert_file", "tls_add_cert_dir"),
    *("tls_add_crl_file", "tls_crl_check", "tls_profile", "tls_cipher", "tls_dhparam"),
    *("tls_sni", "tls_seed", "tls_write_seed", "tls_write_seed_file", "tls_peer_cert"),
)


def check_tls(args: ParsedArgs) -> None:
    """tlsopt.cc's dependences: TLS settings only with `+tls`, seed writing only with `+rs`."""
    _check_tls(args, "--enable-tls")


def check_tls_anonymous(args: ParsedArgs) -> None:
    """`check_tls` for commands that also have `+tla` (findscu)."""
    _check_tls(args, "--enable-tls or --anonymous-tls")


def _check_tls(args: ParsedArgs, needed: str) -> None:
    enabled = args.tls_identity is not None
    for dest in _TLS_NEEDS_ENABLE:
        option = args.source(dest)
        if option is not None and not enabled:
            raise OptionError(f"{option.name} only allowed with {needed}")
    for dest in ("tls_write_seed", "tls_write_seed_file"):
        option = args.source(dest)
        if option is not None and args.tls_seed is None:
            raise OptionError(f"{option.name} only allowed with --seed")


def tls_settings(args: ParsedArgs) -> TlsSettings | None:
    """The TLS settings of a parsed command line; None for plain TCP (`-tls`)."""
    if args.tls_identity is None:
        return None
    key, cert = args.tls_identity or (None, None)  # () is +tla: no certificate
    return TlsSettings(
        key_file=key,
        cert_file=cert,
        password=args.tls_password,
        der=args.tls_format == "der",
        ca_files=tuple(args.tls_add_cert_file),
        ca_dirs=tuple(args.tls_add_cert_dir),
        crl_files=tuple(args.tls_add_crl_file),
        crl_check=args.tls_crl_check,
        profile=str(args.tls_profile),
        ciphers=tuple(args.tls_cipher),
        dh_params=args.tls_dhparam,
        expect_sni=args.tls_sni,
        seed_file=args.tls_seed,
        write_seed=bool(args.tls_write_seed),
        write_seed_file=args.tls_write_seed_file,
        peer_certificate=args.tls_peer_cert,
    )


def tls_contexts(
    args: ParsedArgs, *, client: bool = True, server: bool = False
) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    """(requestor, acceptor) contexts of a parsed command line, those asked for; (None, None)
    for plain TCP. The `+ps` prompt is answered once for both. TlsError when one cannot be
    built (each command maps that to its own exit code)."""
    settings = tls_settings(args)
    if settings is None:
        return None, None
    settings = ask_password_once(settings)
    return (
        client_context(settings) if client else None,
        server_context(settings) if server else None,
    )


_OUTPUT = """
# output options
[general] output_directory
-od  --output-directory     @str  [d]irectory: string (default: ".")
  |write received objects to existing directory d
[bit preserving mode] bit_preserving
-B   --normal               False  allow implicit format conversions (default)
+B   --bit-preserving       True   write data exactly as read
[output file format] write_file
+F   --write-file           True   write file format (default)
-F   --write-dataset        False  write data set without file meta information
[output transfer syntax (not with --bit-preserving or compressed transmission)] write_xfer
+t=  --write-xfer-same      same      write with same TS as input (default)
+te  --write-xfer-little    little    write with explicit VR little endian TS
+tb  --write-xfer-big       big       write with explicit VR big endian TS
+ti  --write-xfer-implicit  implicit  write with implicit VR little endian TS
+td  --write-xfer-deflated  deflated  write with deflated expl. VR little endian TS
[post-1993 value representations (not with --bit-preserving)] enable_new_vr
+u   --enable-new-vr        True   enable support for new VRs (UN/UT) (default)
-u   --disable-new-vr       False  disable support for new VRs, convert to OB
[group length encoding (not with --bit-preserving)] group_length
+g=  --group-length-recalc  recalc  recalculate group lengths if present (default)
+g   --group-length-create  create  always write with group length elements
-g   --group-length-remove  remove  always write without group length elements
[length encoding in sequences and items (not with --bit-preserving)] length_encoding
+e   --length-explicit      explicit   write with explicit lengths (default)
-e   --length-undefined     undefined  write with undefined lengths
[data set trailing padding (not with --write-dataset or --bit-preserving)] padding
-p   --padding-off          None      no padding (default)
+p   --padding-create       @padding  [f]ile-pad [i]tem-pad: integer|{padding}
[deflate compression level (only with {deflate_with}--write-xfer-deflated/same)] compression_level
+cl  --compression-level    @level  [l]evel: integer (default: 6)
  |0=uncompressed, 1=fastest, 9=best compression
"""

_OUTPUT_DEFAULTS = {
    "output_directory": ".",
    "bit_preserving": False,
    "write_file": True,
    "write_xfer": "same",
    "enable_new_vr": True,
    "group_length": "recalc",
    "length_encoding": "explicit",
    "compression_level": 6,
}


# --- checks (DCMTK's checkConflict / checkDependence, in movescu.cc's order) -------------------


def _conflict(first: OptionSpec | None, second: str, condition: bool) -> None:
    if first is not None and condition:
        raise OptionError(f"{first.name} not allowed with {second}")


def check_logging(args: ParsedArgs) -> None:
    """OFLog::configureFromCommandLine: -ll excludes -q/-v/-d."""
    _conflict(args.source("log_level"), "--verbose, --debug or --quiet", args.given("verbosity"))


def check_output(args: ParsedArgs) -> None:
    """Output options against bit preserving mode, compressed reception and -F."""
    bit_preserving = args.bit_preserving is True
    xfer = args.source("write_xfer")
    if xfer is not None and args.write_xfer != "same":
        prefer = args.source("prefer")
        _conflict(xfer, "--accept-all", args.prefer == "accept-all")
        _conflict(xfer, "--bit-preserving", bit_preserving)
        if prefer is not None:
            _conflict(xfer, prefer.name, args.prefer in COMPRESSED_PREFERENCES)
    for dest in ("enable_new_vr", "group_length", "length_encoding"):
        _conflict(args.source(dest), "--bit-preserving", bit_preserving)
    if args.padding is not None:
        _conflict(args.source("padding"), "--write-dataset", args.write_file is False)
        _conflict(args.source("padding"), "--bit-preserving", bit_preserving)


def _check_compression(args: ParsedArgs, *, propose: bool) -> None:
    if not args.given("compression_level"):
        return
    allowed = args.write_xfer in ("same", "deflated")
    if propose:
        allowed = allowed or args.propose == "deflated"
        wanted = "--propose-deflated, --write-xfer-deflated or --write-xfer-same"
    else:
        wanted = "--write-xfer-deflated or --write-xfer-same"
    if not allowed:
        raise OptionError(f"--compression-level only allowed with {wanted}")


def check_movescu(args: ParsedArgs) -> None:
    """movescu.cc's checks after the values: -od needs +P, output conflicts, +cl, files."""
    check_logging(args)
    if args.given("output_directory") and args.retrieve_port is None:
        raise OptionError("--output-directory only allowed with --port")
    check_output(args)
    _check_compression(args, propose=True)
    for name in args.dcmfile_in:
        if not os.access(name, os.R_OK):
            raise OptionError(f"cannot access file: {name}")
    friendly = ("patient_id", "study_uid", "series_uid", "accession")
    if not (args.dcmfile_in or args.keys or args.sop_uid or any(args[k] for k in friendly)):
        raise OptionError("either query file or override keys (or both) must be specified")


def check_storescp(args: ParsedArgs) -> None:
    """storescp.cc's checks: output conflicts and +cl."""
    check_logging(args)
    check_output(args)
    _check_compression(args, propose=False)


def effective_log_level(args: ParsedArgs) -> str:
    """DCMTK's level from -ll or -q/-v/-d (rightmost of those wins), else "warn"."""
    if args.log_level is not None:
        return str(args.log_level)
    return {"quiet": "fatal", "verbose": "info", "debug": "debug"}.get(args.verbosity, "warn")


def move_destination(args: ParsedArgs) -> str:
    """`-aem`, or movescu's fallback: our own calling AE title."""
    return str(args.move if args.move is not None else args.aetitle)


# --- aiomove move ----------------------------------------------------------------------------

_MOVESCU_NETWORK = """
# network options
[IP protocol version] ip_version
-i4   --ipv4     ipv4  use IPv4 only (default)
-i6   --ipv6     ipv6  use IPv6 only
-i0   --ip-auto  auto  use IPv6/IPv4 dual stack
[override matching keys] keys
-k    --key      @str*  [k]ey: gggg,eeee="str" or dict. name="str"|override matching key
[query information model] model
-P    --patient  patient  use patient root information model (default)
-S    --study    study    use study root information model
-O    --psonly   psonly   use patient/study only information model
[application entity titles] *
-aet  --aetitle  @str  [a]etitle: string|set my calling AE title (default: MOVESCU)
-aec  --call     @str  [a]etitle: string|set called AE title of peer (default: ANY-SCP)
-aem  --move     @str  [a]etitle: string|set move destinat. AE title (default: MOVESCU)
[preferred network transfer syntaxes (incoming associations)] prefer
{prefer}
[proposed transmission transfer syntaxes (outgoing associations)] propose
-x=   --propose-uncompr   uncompressed  propose all uncompressed TS, explicit VR
  with local byte ordering first (default)
-xe   --propose-little    little  propose all uncompressed TS, explicit VR
  little endian first
-xb   --propose-big       big     propose all uncompressed TS, explicit VR
  big endian first
-xd   --propose-deflated  deflated  propose deflated explicit VR little endian TS
  and all uncompressed transfer syntaxes
-xi   --propose-implicit  implicit  propose implicit VR little endian TS only
{access}
[port for incoming network associations] retrieve_port
.     --no-port  None   no port for incoming associations (default)
+P    --port     @port  [n]umber: integer|port number for incoming associations
[handling of illegal datasets following 'pending' move responses] pending
-pi   --pending-ignore  ignore  assume no dataset present (default)
-pr   --pending-read    read    read and ignore dataset
[other network options] *
-to   --timeout              @seconds  [s]econds: integer (default: unlimited)
  |timeout for connection requests
-ta   --acse-timeout         @seconds  [s]econds: integer (default: 30)|timeout for ACSE messages
-td   --dimse-timeout        @seconds  [s]econds: integer (default: unlimited)
  |timeout for DIMSE messages
-pdu  --max-pdu              @pdu  [n]umber of bytes: integer (4096..131072)
  |set max receive pdu to n bytes (default: 16384)
-dhl  --disable-host-lookup  True     disable hostname lookup
.     --repeat               @repeat  [n]umber: integer|repeat n times
.     --abort                True     abort association instead of releasing it
.     --ignore               True     ignore store data, receive but do not store
.     --cancel               @cancel  [n]umber: integer|cancel after n responses (default: never)
-up   --uid-padding          True     silently correct space-padded UIDs
"""

_MOVESCU_EXTENSIONS = """
# aiomove extensions
[] *
.  --patient-id  @str   [i]d: string|retrieve the patient with Patient ID i
.  --study-uid   @str   [u]id: string|retrieve the study with Study Instance UID u
.  --series-uid  @str   [u]id: string|retrieve the series with Series Instance UID u
.  --sop-uid     @str*  [u]id: string|retrieve the instance with SOP Instance UID u
  (repeatable)
.  --accession   @str   [n]umber: string|retrieve the study with Accession Number n
.  --level       @qr-level  [l]evel: string constant|(PATIENT, STUDY, SERIES, IMAGE)
  Query/Retrieve Level (default: from the
  most specific of the options above)
.  --strict      True   query validation warnings are fatal errors
.  --linger      @linger  [s]econds: float (default: 5)
  |keep storage associations open s seconds
  after the final C-MOVE response
.  --report      @str   [f]ilename: string|write a JSON report to file f
.  --fsync       True   fsync each received file before answering
  (durable across power loss; slower)
.  --log-json    True   log as JSON lines
"""

MOVESCU = CommandSpec(
    name="aiomove move",
    description="DICOM retrieve (C-MOVE) SCU",
    params=(
        ParamSpec("peer", "hostname of DICOM peer"),
        ParamSpec("port", "tcp/ip port number of peer", Int(1, 65535)),
        ParamSpec("dcmfile-in", "DICOM query file(s)", optional=True, variadic=True),
    ),
    options=(
        *_general(),
        *_table(
            _MOVESCU_NETWORK.format(
                prefer=_PREFER.format(deflated="prefer deflated explicit VR little endian TS"),
                access=_ACCESS,
            )
        ),
        *_tls(),
        *_table(
            _OUTPUT.format(
                padding="align file on multiple of f bytes\n  and items on multiple of i bytes",
                deflate_with="-xd or ",
            )
        ),
        *_table(_MOVESCU_EXTENSIONS),
        *security_options(move=True),
    ),
    defaults={
        "ip_version": "ipv4",
        "model": "patient",
        "aetitle": "MOVESCU",
        "call": "ANY-SCP",
        "move": None,
        "prefer": "uncompressed",
        "propose": "uncompressed",
        "access_control": False,
        "retrieve_port": None,
        "pending": "ignore",
        "timeout": None,
        "acse_timeout": 30.0,
        "dimse_timeout": None,
        "max_pdu": 16384,
        "repeat": 1,
        "cancel": None,
        "linger": 5.0,
        **_TLS_DEFAULT_VALUES,
        **_OUTPUT_DEFAULTS,
        **SECURITY_DEFAULTS,
    },
    checks=(check_movescu, check_tls),
)


# --- aiomove store-scp -----------------------------------------------------------------------

_STORESCP_NETWORK = """
# network options
[preferred network transfer syntaxes] prefer
{prefer}
{access}
[other network options] *
-ts   --socket-timeout       @socket-seconds  [s]econds: integer (default: 60)
  |timeout for network socket (0 for none)
-ta   --acse-timeout         @seconds  [s]econds: integer (default: 30)|timeout for ACSE messages
-td   --dimse-timeout        @seconds  [s]econds: integer (default: unlimited)
  |timeout for DIMSE messages
-aet  --aetitle              @str  [a]etitle: string|set my AE title (default: STORESCP)
-pdu  --max-pdu              @pdu  [n]umber of bytes: integer (4096..131072)
  |set max receive pdu to n bytes (default: 16384)
-dhl  --disable-host-lookup  True  disable hostname lookup
.     --refuse               True  refuse association
.     --reject               True  reject association if no implement. class UID
.     --ignore               True  ignore store data, receive but do not store
-pm   --promiscuous          True  promiscuous mode, accept unknown SOP classes
-up   --uid-padding          True  silently correct space-padded UIDs
"""

STORESCP = CommandSpec(
    name="aiomove store-scp",
    description="DICOM storage (C-STORE) SCP",
    params=(ParamSpec("port", "tcp/ip port number to listen on", Int(1, 65535)),),
    options=(
        *_general("+v  --verbose-pc  True  show presentation contexts in verbose mode\n"),
        *_table(
            _STORESCP_NETWORK.format(
                prefer=_PREFER.format(deflated="prefer deflated expl. VR little endian TS"),
                access=_ACCESS,
            )
        ),
        *_tls(),
        *_table(
            _OUTPUT.format(
                padding="align file on multiple of f bytes and items\n  on multiple of i bytes",
                deflate_with="",
            )
        ),
        *_table(
            "# aiomove extensions\n[] *\n"
            ".  --fsync     True  fsync each received file before answering\n"
            ".  --log-json  True  log as JSON lines"
        ),
        *security_options(move=False),
    ),
    defaults={
        "prefer": "uncompressed",
        "access_control": False,
        "socket_timeout": 60.0,
        "acse_timeout": 30.0,
        "dimse_timeout": None,
        "aetitle": "STORESCP",
        "max_pdu": 16384,
        **_TLS_DEFAULT_VALUES,
        **_OUTPUT_DEFAULTS,
        **SECURITY_DEFAULTS,
    },
    checks=(check_storescp, check_tls),
)
