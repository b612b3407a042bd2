"""The DCMTK-style parser and the movescu/storescp tables (aiomove.options, options_specs).

Expected messages and behaviours were taken from the installed DCMTK 3.6.7 `movescu` and
`storescp` (run by hand; the optional last test compares the help text when movescu exists).
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiomove.options import (
    CommandSpec,
    Float,
    Int,
    OptionError,
    OptionSpec,
    ParamSpec,
    Str,
    convert_value,
    expand_command_files,
    format_arguments,
    format_help,
    is_option,
    parse,
    split_command_file,
)
from aiomove.options_find import ECHOSCU
from aiomove.options_specs import (
    MOVESCU,
    STORESCP,
    effective_log_level,
    move_destination,
    tls_contexts,
    tls_settings,
)
from aiomove.tls import TlsError, TlsSettings

PEER = ["pacs.example", "104"]
KEY = ["-k", "PatientID=1"]  # movescu needs a query file or a key

# --- the independent list: every option of `movescu --help` (DCMTK 3.6.7) and the newer manual.
# (short, long, number of values), written down by hand from the help text, not from the table.
MOVESCU_367 = [
    ("-h", "--help", 0), ("", "--version", 0), ("", "--arguments", 0), ("-q", "--quiet", 0),
    ("-v", "--verbose", 0), ("-d", "--debug", 0), ("-ll", "--log-level", 1),
    ("-lc", "--log-config", 1), ("-k", "--key", 1), ("-P", "--patient", 0),
    ("-S", "--study", 0), ("-O", "--psonly", 0), ("-aet", "--aetitle", 1), ("-aec", "--call", 1),
    ("-aem", "--move", 1), ("+x=", "--prefer-uncompr", 0), ("+xe", "--prefer-little", 0),
    ("+xb", "--prefer-big", 0), ("+xs", "--prefer-lossless", 0), ("+xy", "--prefer-jpeg8", 0),
    ("+xx", "--prefer-jpeg12", 0), ("+xv", "--prefer-j2k-lossless", 0),
    ("+xw", "--prefer-j2k-lossy", 0), ("+xt", "--prefer-jls-lossless", 0),
    ("+xu", "--prefer-jls-lossy", 0), ("+xm", "--prefer-mpeg2", 0),
    ("+xh", "--prefer-mpeg2-high", 0), ("+xn", "--prefer-mpeg4", 0),
    ("+xl", "--prefer-mpeg4-bd", 0), ("+x2", "--prefer-mpeg4-2-2d", 0),
    ("+x3", "--prefer-mpeg4-2-3d", 0), ("+xo", "--prefer-mpeg4-2-st", 0),
    ("+x4", "--prefer-hevc", 0), ("+x5", "--prefer-hevc10", 0), ("+xr", "--prefer-rle", 0),
    ("+xd", "--prefer-deflated", 0), ("+xi", "--implicit", 0), ("+xa", "--accept-all", 0),
    ("-x=", "--propose-uncompr", 0), ("-xe", "--propose-little", 0),
    ("-xb", "--propose-big", 0), ("-xd", "--propose-deflated", 0),
    ("-xi", "--propose-implicit", 0), ("-ac", "--access-full", 0),
    ("+ac", "--access-control", 0), ("", "--no-port", 0), ("+P", "--port", 1),
    ("-pi", "--pending-ignore", 0), ("-pr", "--pending-read", 0), ("-to", "--timeout", 1),
    ("-ta", "--acse-timeout", 1), ("-td", "--dimse-timeout", 1), ("-pdu", "--max-pdu", 1),
    ("-dhl", "--disable-host-lookup", 0), ("", "--repeat", 1), ("", "--abort", 0),
    ("", "--ignore", 0), ("", "--cancel", 1), ("-up", "--uid-padding", 0),
    ("-od", "--output-directory", 1), ("-B", "--normal", 0), ("+B", "--bit-preserving", 0),
    ("+F", "--write-file", 0), ("-F", "--write-dataset", 0), ("+t=", "--write-xfer-same", 0),
    ("+te", "--write-xfer-little", 0), ("+tb", "--write-xfer-big", 0),
    ("+ti", "--write-xfer-implicit", 0), ("+td", "--write-xfer-deflated", 0),
    ("+u", "--enable-new-vr", 0), ("-u", "--disable-new-vr", 0),
    ("+g=", "--group-length-recalc", 0), ("+g", "--group-length-create", 0),
    ("-g", "--group-length-remove", 0), ("+e", "--length-explicit", 0),
    ("-e", "--length-undefined", 0), ("-p", "--padding-off", 0), ("+p", "--padding-create", 2),
    ("+cl", "--compression-level", 1),
]  # fmt: skip
NEWER_MANUAL = [("-i4", "--ipv4", 0), ("-i6", "--ipv6", 0), ("-i0", "--ip-auto", 0)]
TLS_MANUAL = [
    ("-tls", "--disable-tls", 0), ("+tls", "--enable-tls", 2), ("+ps", "--std-passwd", 0),
    ("+pw", "--use-passwd", 1), ("-pw", "--null-passwd", 0), ("-pem", "--pem-keys", 0),
    ("-der", "--der-keys", 0), ("+cf", "--add-cert-file", 1), ("+cd", "--add-cert-dir", 1),
    ("+crl", "--add-crl-file", 1), ("+crv", "--enable-crl-vfy", 0),
    ("+cra", "--enable-crl-all", 0), ("+ph", "--list-profiles", 0),
    ("+pg", "--profile-8996", 0), ("+pm", "--profile-8996-mod", 0),
    ("+py", "--profile-bcp195-nd", 0), ("+px", "--profile-bcp195", 0),
    ("+pz", "--profile-bcp195-ex", 0), ("+pb", "--profile-basic", 0),
    ("+pa", "--profile-aes", 0), ("+pn", "--profile-null", 0), ("+cc", "--list-ciphers", 0),
    ("+cs", "--cipher", 1), ("+dp", "--dhparam", 1), ("", "--no-sni", 0),
    ("", "--expect-sni", 1), ("+rs", "--seed", 1), ("+ws", "--write-seed", 0),
    ("+wf", "--write-seed-file", 1), ("-rc", "--require-peer-cert", 0),
    ("-vc", "--verify-peer-cert", 0), ("-ic", "--ignore-peer-cert", 0),
]  # fmt: skip
EXTENSIONS = [
    ("", "--patient-id", 1), ("", "--study-uid", 1), ("", "--series-uid", 1),
    ("", "--sop-uid", 1), ("", "--accession", 1), ("", "--level", 1), ("", "--strict", 0),
    ("", "--linger", 1), ("", "--report", 1), ("", "--fsync", 0), ("", "--log-json", 0),
]  # fmt: skip
# access control and limits of the embedded Storage SCP (aiomove.options_security)
SECURITY = [
    ("", "--hosts-allow", 1), ("", "--hosts-deny", 1), ("", "--accept-aet", 1),
    ("", "--accept-network", 1), ("", "--max-associations", 1), ("", "--idle-timeout", 1),
    ("", "--min-rate", 1), ("", "--max-instance-size", 1), ("", "--min-free-space", 1),
]  # fmt: skip
ALL_MOVESCU = (
    MOVESCU_367 + NEWER_MANUAL + TLS_MANUAL + EXTENSIONS + SECURITY + [("", "--only-moved", 0)]
)


def move(*args: str) -> Any:
    """Parse a movescu command line that has a peer, a port and a key already."""
    return parse(MOVESCU, [*args, *KEY, *PEER])


def error_of(spec: CommandSpec, argv: list[str]) -> str:
    with pytest.raises(OptionError) as info:
        parse(spec, argv)
    return str(info.value)


# --- the table against the independent list --------------------------------------------------


@pytest.mark.parametrize(("short", "long", "count"), ALL_MOVESCU)
def test_every_documented_option_is_in_the_table(short: str, long: str, count: int) -> None:
    opt = MOVESCU.lookup[long]
    assert opt.short == short
    assert len(opt.values) == count
    if short:
        assert MOVESCU.lookup[short] is opt


def test_the_table_has_nothing_else() -> None:
    assert {o.long for o in MOVESCU.options} == {long for _, long, _ in ALL_MOVESCU}
    assert len(MOVESCU.options) == len(ALL_MOVESCU)


def _sample(vtype: Int | Float | Str) -> str:
    """A valid value of each type, as typed on a command line."""
    if isinstance(vtype, Str):
        return vtype.choices[0] if vtype.choices else "X"
    if isinstance(vtype, Int):
        return str(max(vtype.min or 0, 1) if vtype.max is None else vtype.max)
    return "2.5"


def _argv_for(spelling: str, opt: OptionSpec) -> list[str]:
    argv = [spelling, *(_sample(v) for v in opt.values)]
    if opt.dest == "output_directory":
        argv += ["+P", "11112"]  # movescu: -od only with --port
    if opt.dest.startswith("tls_") and opt.dest != "tls_identity":
        argv += ["+tls", "k.pem", "c.pem"]  # DCMTK: TLS options only with --enable-tls
    if opt.dest in ("tls_write_seed", "tls_write_seed_file"):
        argv += ["+rs", "seed"]  # only with --seed
    return argv


SPELLINGS = [(o, s) for o in MOVESCU.options for s in (o.short, o.long) if s]


@pytest.mark.parametrize(("opt", "spelling"), SPELLINGS, ids=[s for _, s in SPELLINGS])
def test_each_option_parses_under_both_spellings(opt: OptionSpec, spelling: str) -> None:
    argv = _argv_for(spelling, opt)
    if opt.unsupported:
        assert error_of(MOVESCU, [*argv, *KEY, *PEER]) == opt.unsupported
        return
    parsed = move(*argv)
    if opt.exclusive:
        assert parsed[opt.dest] is True
        return
    raw = [_sample(v) for v in opt.values]
    converted = [convert_value(v, r) for v, r in zip(opt.values, raw, strict=True)]
    expected = opt.const if not opt.values else converted[0] if len(raw) == 1 else tuple(converted)
    if opt.repeatable:
        assert expected in parsed[opt.dest]
    else:
        assert parsed[opt.dest] == expected
    assert parsed.source(opt.dest) is opt
    assert parsed.given(opt.dest)


def test_values_are_typed() -> None:
    parsed = move("-to", "5", "-ta", "2.5", "-pdu", "65536", "+P", "104", "+p", "8", "0")
    assert parsed.timeout == 5.0
    assert parsed.acse_timeout == 2.5
    assert parsed.max_pdu == 65536
    assert parsed.retrieve_port == 104
    assert parsed.padding == (8, 0)
    assert parsed.peer == "pacs.example"
    assert parsed.port == 104
    assert parsed.dcmfile_in == []


# --- defaults ----------------------------------------------------------------------------------

# What `movescu --help` documents ("(default)" / "(default: x)"), written down by hand.
MOVESCU_DEFAULTS: dict[str, object] = {
    "verbosity": None, "log_level": None, "ip_version": "ipv4", "keys": [], "model": "patient",
    "aetitle": "MOVESCU", "call": "ANY-SCP", "prefer": "uncompressed", "propose": "uncompressed",
    "access_control": False, "retrieve_port": None, "pending": "ignore", "timeout": None,
    "acse_timeout": 30, "dimse_timeout": None, "max_pdu": 16384, "disable_host_lookup": False,
    "repeat": 1, "abort": False, "ignore": False, "cancel": None, "uid_padding": False,
    "output_directory": ".", "bit_preserving": False, "write_file": True, "write_xfer": "same",
    "enable_new_vr": True, "group_length": "recalc", "length_encoding": "explicit",
    "padding": None, "compression_level": 6, "tls_identity": None, "tls_password": None,
    "tls_format": "pem", "tls_add_cert_file": [], "tls_add_cert_dir": [],
    "tls_add_crl_file": [], "tls_crl_check": "none", "tls_profile": "8996", "tls_cipher": [],
    "tls_dhparam": None, "tls_sni": None, "tls_seed": None, "tls_write_seed": False,
    "tls_write_seed_file": None, "tls_peer_cert": "require", "tls_list_profiles": False,
    "tls_list_ciphers": False,
    "patient_id": None, "study_uid": None, "series_uid": None, "sop_uid": [], "accession": None,
    "level": None, "strict": False, "linger": 5, "report": None, "log_json": False,
    "help": False, "version": False, "arguments": False,
    # aiomove's, from the help text's "(default: ...)"
    "hosts_allow": "/etc/hosts.allow", "hosts_deny": "/etc/hosts.deny", "accept_aet": [],
    "accept_network": [], "max_associations": 64, "idle_timeout": 300, "min_rate": 1024,
    "max_instance_size": 8192, "min_free_space": 256, "only_moved": False,
}  # fmt: skip


def test_defaults_are_movescus() -> None:
    parsed = move()
    for dest, value in MOVESCU_DEFAULTS.items():
        expected = ["PatientID=1"] if dest == "keys" else value
        assert parsed[dest] == expected, dest
        assert not parsed.given(dest) or dest == "keys"
    # -aem's documented default MOVESCU is "my own AE title" (movescu.cc: opt_moveDestination).
    assert parsed.move is None
    assert move_destination(parsed) == "MOVESCU"
    assert move_destination(move("-aet", "ME")) == "ME"
    assert move_destination(move("-aet", "ME", "-aem", "THEM")) == "THEM"


@pytest.mark.parametrize("spec", [MOVESCU, STORESCP], ids=["movescu", "storescp"])
def test_options_marked_default_hold_the_default(spec: CommandSpec) -> None:
    defaults = spec.default_values()
    marked = [o for o in spec.options if not o.values and "(default)" in o.help]
    assert len(marked) > 5
    for opt in marked:
        assert defaults[opt.dest] == opt.const, opt.long


def test_storescp_defaults() -> None:
    parsed = parse(STORESCP, ["11112"])
    assert (parsed.port, parsed.aetitle, parsed.socket_timeout) == (11112, "STORESCP", 60)
    assert (parsed.acse_timeout, parsed.dimse_timeout, parsed.max_pdu) == (30, None, 16384)
    assert parsed.output_directory == "."
    assert parse(STORESCP, ["-ts", "0", "-aet", "X", "104"]).socket_timeout == 0


def test_effective_log_level() -> None:
    assert effective_log_level(move()) == "warn"
    assert effective_log_level(move("-q")) == "fatal"
    assert effective_log_level(move("-q", "-d")) == "debug"
    assert effective_log_level(move("-d", "-v")) == "info"
    assert effective_log_level(move("-ll", "TRACE")) == "trace"


# --- rightmost wins --------------------------------------------------------------------------


def _groups(spec: CommandSpec) -> list[list[OptionSpec]]:
    by_dest: dict[str, list[OptionSpec]] = {}
    for opt in spec.options:
        if not opt.unsupported and not opt.repeatable:
            by_dest.setdefault(opt.dest, []).append(opt)
    return [group for group in by_dest.values() if len(group) > 1]


def test_there_are_exclusive_groups() -> None:
    dests = {group[0].dest for group in _groups(MOVESCU)}
    assert {"model", "prefer", "propose", "retrieve_port", "write_xfer", "verbosity"} <= dests


@pytest.mark.parametrize("group", _groups(MOVESCU), ids=lambda g: g[0].dest)
def test_rightmost_wins_in_each_group(group: list[OptionSpec]) -> None:
    for first, last in itertools.permutations(group, 2):
        for spelling in {first.short or first.long, first.long}:
            parsed = move(*_argv_for(spelling, first), *_argv_for(last.short or last.long, last))
            assert parsed.source(last.dest) is last, (spelling, last.long)
            if not last.values:
                assert parsed[last.dest] == last.const


def test_rightmost_of_the_same_option_wins() -> None:
    assert move("-aet", "A", "-aet", "B").aetitle == "B"
    assert move("-to", "x", "-to", "5").timeout == 5  # as DCMTK: the overridden one unchecked
    assert move("-S", "-P", "-O", "-S").model == "study"


def test_repeatable_options_collect_in_order() -> None:
    parsed = parse(MOVESCU, ["-k", "A=1", "--key", "B=2", *PEER, "-k", "A=3"])
    assert parsed.keys == ["A=1", "B=2", "A=3"]
    assert move("--sop-uid", "1.2", "--sop-uid", "1.3").sop_uid == ["1.2", "1.3"]


# --- command files ---------------------------------------------------------------------------


def test_command_file_with_quotes_and_newlines(tmp_path: Path) -> None:
    cmd = tmp_path / "cmd.txt"
    cmd.write_text('-aet "MY AE"\n  -k \'PatientName=Doe^John\'\t-k ""\r\n--repeat 2\n')
    parsed = parse(MOVESCU, [f"@{cmd}", *PEER])
    assert parsed.aetitle == "MY AE"
    assert parsed.keys == ["PatientName=Doe^John", ""]
    assert parsed.repeat == 2
    assert parsed.expanded[:2] == ("--aetitle", "MY AE")


def test_command_file_splitting_rules() -> None:
    # DCMTK: a closing quote ends the word (with what preceded the opening quote), the other
    # quote is literal inside, an unterminated quote runs to the end of the file.
    assert split_command_file('x"y z"w') == ["xy z", "w"]
    assert split_command_file("'a\"b' \"c'd\"") == ['a"b', "c'd"]
    assert split_command_file('  one\n\n two ""  ') == ["one", "two", ""]
    assert split_command_file('"open  end\n') == ["open  end\n"]
    assert split_command_file("") == []


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\"' \t\r\n"), min_size=1)))
def test_command_file_words_round_trip(words: list[str]) -> None:
    assert split_command_file(" \n".join(words)) == words
    assert split_command_file(" ".join(f'"{w} x"' for w in words)) == [f"{w} x" for w in words]


def test_command_files_do_not_nest(tmp_path: Path) -> None:
    inner = tmp_path / "inner.txt"
    inner.write_text("-aet INNER")
    outer = tmp_path / "outer.txt"
    outer.write_text(f"@{inner}")
    assert expand_command_files([f"@{outer}", "@", "x@y"]) == [f"@{inner}", "@", "x@y"]


def test_unreadable_command_file() -> None:
    assert (
        error_of(MOVESCU, ["@/no/such/file", *PEER]) == "Cannot open command file '/no/such/file'"
    )


# --- syntax errors (DCMTK's wording) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--foo", *PEER], "Unknown option --foo"),
        (["--", *PEER], "Unknown option --"),
        (["--aetitle=X", *PEER], "Unknown option --aetitle=X"),
        (["--foo", "-h"], "Unknown option --foo"),  # unknown options stop before --help
        (["-h", "-to"], "Missing value for option --timeout"),
        ([*PEER, "+p", "4"], "Missing value for option --padding-create"),
        (["-to", "x", *KEY, *PEER], "Invalid value for option --timeout (x)"),
        (["-to", "-k", *PEER], "Invalid value for option --timeout (-k)"),
        (["-to", "0", *KEY, *PEER], "Invalid value for option --timeout (underflow: 0)"),
        (["-to", "-5", *KEY, *PEER], "Invalid value for option --timeout (underflow: -5)"),
        (["-pdu", "100", *PEER], "Invalid value for option --max-pdu (underflow: 100)"),
        (["-pdu", "200000", *PEER], "Invalid value for option --max-pdu (overflow: 200000)"),
        (["-pdu", "-5", *PEER], "Invalid value for option --max-pdu (-5)"),
        (["--repeat", "0", *PEER], "Invalid value for option --repeat (underflow: 0)"),
        (["--repeat", "", *PEER], "Invalid value for option --repeat"),
        (["--repeat", "5x", *PEER], "Invalid value for option --repeat (5x)"),
        (["--cancel", "-1", *PEER], "Invalid value for option --cancel (underflow: -1)"),
        (["+P", "0", *PEER], "Invalid value for option --port (underflow: 0)"),
        (["+P", "70000", *PEER], "Invalid value for option --port (overflow: 70000)"),
        (["+P", "0", "--no-port", *PEER], "Invalid value for option --port (underflow: 0)"),
        (["+p", "8", "-1", *PEER], "Invalid value for option --padding-create (-1)"),
        (["+cl", "10", *PEER], "Invalid value for option --compression-level (overflow: 10)"),
        (["-ll", "foo", *PEER], "Invalid log level for --log-level option"),
        (["--level", "FOO", *PEER], "Invalid value for option --level (FOO)"),
        (["pacs"], "Missing parameter port"),
        (["+p", "4", "pacs"], "Missing parameter peer"),
        (["pacs", "0"], "Invalid parameter value 0 (underflow)"),
        (["pacs", "70000"], "Invalid parameter value 70000 (overflow)"),
        (["pacs", "x"], "Invalid parameter value x"),
        (["-5", "pacs"], "Invalid parameter value pacs"),  # "-5" is a parameter, not an option
        ([*PEER], "either query file or override keys (or both) must be specified"),
        ([*PEER, "/no/such/query.dcm"], "cannot access file: /no/such/query.dcm"),
        (["-ic", *KEY, *PEER], "--ignore-peer-cert only allowed with --enable-tls"),
        (["+cf", "ca.pem", *KEY, *PEER], "--add-cert-file only allowed with --enable-tls"),
        (
            ["+tls", "k", "c", "-tls", "-pw", *KEY, *PEER],
            "--null-passwd only allowed with --enable-tls",
        ),
        (["+tls", "k", "c", "+ws", *KEY, *PEER], "--write-seed only allowed with --seed"),
        (["+tls", "k", "c", "+wf", "f", *KEY, *PEER], "--write-seed-file only allowed with --seed"),
    ],
)
def test_syntax_errors(argv: list[str], message: str) -> None:
    assert error_of(MOVESCU, argv) == message


def test_storescp_syntax_errors() -> None:
    assert error_of(STORESCP, ["1", "2"]) == "Too many parameters"
    assert error_of(STORESCP, ["0"]) == "Invalid parameter value 0 (underflow)"
    assert error_of(STORESCP, ["-ts", "-2", "1"]) == (
        "Invalid value for option --socket-timeout (underflow: -2)"
    )


def test_option_error_exit_code() -> None:
    assert OptionError("x").exit_code == 1


def test_values_are_taken_verbatim() -> None:
    assert move("-k", "0010,0010=-x").keys == ["0010,0010=-x", "PatientID=1"]
    assert move("-aet", "-v").aetitle == "-v"
    assert move("-aet", "-v").verbosity is None
    assert [is_option(a) for a in ("-5", "+1", "-", "", "-x", "+P", "--")] == [
        False, False, False, False, True, True, True,
    ]  # fmt: skip


def test_files_are_parameters(tmp_path: Path) -> None:
    a, b = tmp_path / "a.dcm", tmp_path / "b.dcm"
    a.write_bytes(b"")
    b.write_bytes(b"")
    parsed = parse(MOVESCU, [*PEER, str(a), "-S", str(b)])
    assert parsed.dcmfile_in == [str(a), str(b)]
    assert parsed.model == "study"


# --- help, version, --arguments --------------------------------------------------------------


@pytest.mark.parametrize(
    "argv", [[], ["-h"], ["--help"], ["pacs", "-h"], ["-h", "-to", "x"], ["--version", "--help"]]
)
def test_help_wins_and_checks_nothing(argv: list[str]) -> None:
    assert parse(MOVESCU, argv).help is True


def test_version_wins_and_checks_nothing() -> None:
    parsed = parse(MOVESCU, ["--version", "-to", "x", "+tls", "a", "b"])
    assert (parsed.version, parsed.help) == (True, False)


def test_no_arguments_with_optional_parameters_only_is_not_help() -> None:
    spec = CommandSpec("t", "test", (ParamSpec("x", "x", optional=True),), ())
    assert "help" not in parse(spec, []).as_dict()


def test_help_text_lists_every_option() -> None:
    text = format_help(MOVESCU)
    assert text.startswith("aiomove move: DICOM retrieve (C-MOVE) SCU\n")
    assert "usage: aiomove move [options] peer port [dcmfile-in...]\n" in text
    lines = text.splitlines()
    starts = {tuple(line.split()[:2]) for line in lines} | {
        tuple(line.split()[:1]) for line in lines
    }
    for short, long, _ in ALL_MOVESCU:
        assert ((short, long) if short else (long,)) in starts, long
    for opt in MOVESCU.options:
        assert opt.metavar in text
        assert opt.help.split("\n")[0] in text
    store = format_help(STORESCP)
    assert "usage: aiomove store-scp [options] port\n" in store
    assert all(o.long in store for o in STORESCP.options)


@pytest.mark.skipif(shutil.which("movescu") is None, reason="DCMTK movescu not installed")
def test_help_text_matches_dcmtk_line_for_line() -> None:
    """Every line of `movescu --help` (but its name) appears in ours, in the same order."""
    dcmtk = subprocess.run(["movescu", "--help"], capture_output=True, text=True, check=False)
    theirs = [line.rstrip() for line in dcmtk.stdout.splitlines()[4:]]
    ours = iter(line.rstrip() for line in format_help(MOVESCU).splitlines())
    missing = [line for line in theirs if line not in ours]  # `in` consumes: order is checked
    assert missing == []


def test_arguments_are_listed_expanded(tmp_path: Path) -> None:
    cmd = tmp_path / "c.txt"
    cmd.write_text("-aet 'A B'")
    parsed = parse(MOVESCU, ["--arguments", f"@{cmd}", "-k", "X=1", *PEER])
    assert parsed.arguments is True
    assert parsed.expanded == (
        "--arguments", "--aetitle", "A B", "--key", "X=1", "pacs.example", "104",
    )  # fmt: skip
    # DCMTK 3.6.7: "calling 'movescu' with 7 arguments: '--arguments' ... 'A B' "
    assert format_arguments(parsed.expanded, "aiomove move") == (
        "calling 'aiomove move' with 7 arguments: '--arguments' '--aetitle' 'A B' "
        "'--key' 'X=1' 'pacs.example' '104' "
    )


# --- conflicts (DCMTK's checkConflict / checkDependence) -------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["+B", "+te"], "--write-xfer-little not allowed with --bit-preserving"),
        (["+te", "+B"], "--write-xfer-little not allowed with --bit-preserving"),
        (["+xa", "+te"], "--write-xfer-little not allowed with --accept-all"),
        (["+B", "+xa", "+te"], "--write-xfer-little not allowed with --accept-all"),
        (["+xs", "+tb"], "--write-xfer-big not allowed with --prefer-lossless"),
        (["+xr", "+ti"], "--write-xfer-implicit not allowed with --prefer-rle"),
        (["+x4", "+td"], "--write-xfer-deflated not allowed with --prefer-hevc"),
        (["+B", "-u"], "--disable-new-vr not allowed with --bit-preserving"),
        (["+B", "+u"], "--enable-new-vr not allowed with --bit-preserving"),
        (["+B", "+g="], "--group-length-recalc not allowed with --bit-preserving"),
        (["+B", "-g"], "--group-length-remove not allowed with --bit-preserving"),
        (["+B", "-e"], "--length-undefined not allowed with --bit-preserving"),
        (["-F", "+p", "8", "8"], "--padding-create not allowed with --write-dataset"),
        (["+B", "+p", "8", "8"], "--padding-create not allowed with --bit-preserving"),
        (
            ["+te", "+cl", "5"],
            "--compression-level only allowed with --propose-deflated, --write-xfer-deflated "
            "or --write-xfer-same",
        ),
        (["-od", "."], "--output-directory only allowed with --port"),
        (["-od", ".", "+P", "104", "--no-port"], "--output-directory only allowed with --port"),
        (["-v", "-ll", "info"], "--log-level not allowed with --verbose, --debug or --quiet"),
        (["-ll", "info", "-q"], "--log-level not allowed with --verbose, --debug or --quiet"),
    ],
)
def test_conflicts(argv: list[str], message: str) -> None:
    assert error_of(MOVESCU, [*argv, *KEY, *PEER]) == message


@pytest.mark.parametrize(
    "argv",
    [
        ["+xs", "+xe", "+te"],  # the rightmost preference counts
        ["+xd", "+te"],  # deflate can always be undone
        ["+B", "-B", "+te"],
        ["+B", "+t="],
        ["+xs", "+t="],
        ["+te", "-xd", "+cl", "5"],
        ["+td", "+cl", "0"],
        ["-od", ".", "+P", "104"],
        ["-F", "-p"],
    ],
)
def test_no_conflict(argv: list[str]) -> None:
    move(*argv)


def test_storescp_conflicts() -> None:
    assert error_of(STORESCP, ["+te", "+cl", "3", "104"]) == (
        "--compression-level only allowed with --write-xfer-deflated or --write-xfer-same"
    )
    assert error_of(STORESCP, ["+B", "+te", "104"]) == (
        "--write-xfer-little not allowed with --bit-preserving"
    )
    parse(STORESCP, ["-od", "/tmp", "104"])  # no --port dependency for storescp


# --- the parser itself -----------------------------------------------------------------------


def test_table_bugs_are_refused() -> None:
    twice = OptionSpec("-a", "--aa", "a", "x"), OptionSpec("-a", "--bb", "b", "y")
    with pytest.raises(ValueError, match="duplicate"):
        parse(CommandSpec("t", "t", (), twice), [])
    clash = CommandSpec("t", "t", (ParamSpec("x", "x"),), (OptionSpec("-x", "--x", "x", "x"),))
    with pytest.raises(ValueError, match="share"):
        parse(clash, ["1"])


@pytest.mark.parametrize(
    ("vtype", "raw", "result"),
    [
        (Int(1, 9), "9", 9),
        (Int(), "-3", -3),
        (Int(), "+3", 3),
        (Float(), "1.5", 1.5),
        (Float(), "1e2", 100.0),
        (Float(min=0, min_exclusive=True), "0.001", 0.001),
        (Str(("a", "b"), fold="lower"), "B", "b"),
        (Str(), "", ""),
    ],
)
def test_convert_value(vtype: Int | Float | Str, raw: str, result: object) -> None:
    assert convert_value(vtype, raw) == result


@pytest.mark.parametrize(
    ("vtype", "raw"),
    [
        (Int(), "1.5"),
        (Int(), "0x10"),
        (Int(), " 5"),
        (Int(), "5_000"),
        (Int(unsigned=True), "+1"),
        (Float(), "nan"),
        (Float(), "inf"),
        (Str(("a",)), "b"),
    ],
)
def test_convert_value_refuses(vtype: Int | Float | Str, raw: str) -> None:
    with pytest.raises(Exception, match="invalid"):
        convert_value(vtype, raw)


# --- TLS options -> TlsSettings ----------------------------------------------------------------


def test_no_tls_by_default() -> None:
    assert tls_settings(move()) is None
    assert tls_settings(move("+tls", "k", "c", "-tls")) is None


def test_tls_options_become_settings() -> None:
    parsed = move(
        *("+tls", "k.pem", "c.pem", "+pw", "pw", "-pw", "-der", "+cf", "a", "+cf", "b"),
        *("+cd", "d", "+crl", "r", "+cra", "+px", "+pz", "+cs", "S1", "+cs", "S2", "+dp", "dh"),
        *("--expect-sni", "pacs", "+rs", "seed", "+ws", "+wf", "out", "-vc", "-ic"),
    )
    assert tls_settings(parsed) == TlsSettings(
        key_file="k.pem",
        cert_file="c.pem",
        password="",
        der=True,
        ca_files=("a", "b"),
        ca_dirs=("d",),
        crl_files=("r",),
        crl_check="chain",
        profile="bcp195-ex",
        ciphers=("S1", "S2"),
        dh_params="dh",
        expect_sni="pacs",
        seed_file="seed",
        write_seed=True,
        write_seed_file="out",
        peer_certificate="ignore",
    )
    assert tls_settings(move("+tls", "k", "c", "+pw", "x")) == TlsSettings("k", "c", "x")


@pytest.mark.parametrize("spec", [MOVESCU, STORESCP], ids=["movescu", "storescp"])
@pytest.mark.parametrize("option", ["+ph", "--list-profiles", "+cc", "--list-ciphers"])
def test_listing_options_are_exclusive(spec: CommandSpec, option: str) -> None:
    parsed = parse(spec, [option])  # no parameters needed, as with --help
    assert parsed[spec.lookup[option].dest] is True


def test_tls_contexts_builds_the_contexts_asked_for() -> None:
    """`tls_contexts`: none for plain TCP; `+tla` makes a requestor context, and an acceptor
    (which needs a certificate) cannot be built from it."""
    assert tls_contexts(parse(ECHOSCU, PEER), server=True) == (None, None)
    anonymous = parse(ECHOSCU, ["+tla", *PEER])
    client, server = tls_contexts(anonymous)
    assert client is not None
    assert server is None
    with pytest.raises(TlsError, match="needs a private key and a certificate"):
        tls_contexts(anonymous, client=False, server=True)
