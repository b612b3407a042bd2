"""The security option table and its mapping to AcceptorConfig / FileSink arguments."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from aiomove.accesscontrol import AccessPolicy
from aiomove.options import CommandSpec, OptionError, ParamSpec, format_help, parse
from aiomove.options_security import (
    SECURITY_DEFAULTS,
    only_moved,
    security_options,
    security_settings,
)
from aiomove.options_specs import _ACCESS, _table
from aiomove.server import AcceptorConfig
from aiomove.storage import FileSink

DHL = "[other] *\n-dhl  --disable-host-lookup  True  disable hostname lookup\n"


def spec(move: bool = True) -> CommandSpec:
    """A command with the access rows as the lead will wire them (+ac no longer refused)."""
    return CommandSpec(
        name="test",
        description="",
        params=(ParamSpec("port", "port"),),
        options=(*_table(_ACCESS + DHL), *security_options(move=move)),
        defaults={"access_control": False, **SECURITY_DEFAULTS},
    )


def test_defaults_map_to_the_library_defaults() -> None:
    settings = security_settings(parse(spec(), ["104"]), daemon="movescu")
    config = AcceptorConfig(**settings["acceptor"])
    sink = FileSink(Path("."), **settings["sink"])
    assert config.max_associations == AcceptorConfig().max_associations
    assert config.idle_timeout == AcceptorConfig().idle_timeout
    assert config.access is None
    assert config.calling_ae_titles == frozenset()
    assert sink.max_instance_size == FileSink(Path(".")).max_instance_size
    assert sink.min_free_bytes == FileSink(Path(".")).min_free_bytes
    assert settings["handler"] == {"min_rate": 1024}
    assert not only_moved(parse(spec(), ["104"]))


def test_every_option_maps(tmp_path: Path) -> None:
    argv = [
        "+ac",
        "--hosts-allow",
        str(tmp_path / "a"),
        "--hosts-deny",
        str(tmp_path / "d"),
        "-dhl",
        "--accept-aet",
        "PACS",
        "--accept-aet",
        "CT1",
        "--accept-network",
        "10.0.0.0/8",
        "--accept-network",
        "[2001:db8::]/32",
        "--max-associations",
        "500",
        "--idle-timeout",
        "0",
        "--min-rate",
        "0",
        "--max-instance-size",
        "0",
        "--min-free-space",
        "10",
        "--only-moved",
        "104",
    ]
    args = parse(spec(), argv)
    settings = security_settings(args, daemon="storescp")
    acceptor = settings["acceptor"]
    assert acceptor["access"] == AccessPolicy(
        daemon="storescp",
        allow_file=tmp_path / "a",
        deny_file=tmp_path / "d",
        resolve_names=False,
    )
    assert acceptor["calling_ae_titles"] == frozenset({"PACS", "CT1"})
    assert acceptor["allowed_networks"] == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("2001:db8::/32"),
    )
    assert acceptor["max_associations"] == 500
    assert acceptor["idle_timeout"] is None
    assert settings["sink"] == {"max_instance_size": None, "min_free_bytes": 10 << 20}
    assert settings["handler"] == {"min_rate": 0}
    assert only_moved(args)
    AcceptorConfig(**acceptor)  # every key is a real field


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--accept-network", "10.0.0.0/33", "104"], "--accept-network (10.0.0.0/33)"),
        (["--max-associations", "0", "104"], "underflow"),
        (["--min-free-space", "-1", "104"], "Invalid value"),
    ],
)
def test_bad_values_are_syntax_errors(argv: list[str], message: str) -> None:
    with pytest.raises(OptionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        security_settings(parse(spec(), argv), daemon="movescu")


def test_only_moved_is_a_move_option_and_help_lists_the_rest() -> None:
    longs = {o.long for o in security_options(move=False)}
    assert "--only-moved" not in longs
    assert "--only-moved" in {o.long for o in security_options(move=True)}
    text = format_help(spec())
    for option in ("--hosts-allow", "--max-associations", "--min-free-space", "--only-moved"):
        assert option in text
