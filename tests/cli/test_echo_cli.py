"""`aiomove echo` end to end through the real command: options and exit codes."""

from __future__ import annotations

import subprocess
import sys

from tests.peers import free_port, pynetdicom_scp, stop

AIOMOVE = [sys.executable, "-m", "aiomove"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AIOMOVE, *args], capture_output=True, text=True, timeout=60)


def test_help_lists_dcmtk_options() -> None:
    result = run_cli("echo", "--help")
    assert result.returncode == 0
    for option in ("-aet", "-aec", "-to", "-ta", "-td", "-pdu", "--repeat", "--abort", "-ll"):
        assert option in result.stdout


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("aiomove ")
    assert "pydicom" in result.stdout


def test_bad_option_exits_1() -> None:
    result = run_cli("echo", "--no-such-option", "127.0.0.1", "104")
    assert result.returncode == 1
    assert "no-such-option" in result.stderr


def test_missing_port_exits_1() -> None:
    assert run_cli("echo", "127.0.0.1").returncode == 1


def test_pdu_out_of_range_exits_1() -> None:
    assert run_cli("echo", "-pdu", "100", "127.0.0.1", "104").returncode == 1


def test_bad_log_level_exits_1() -> None:
    assert run_cli("echo", "-ll", "loud", "127.0.0.1", "104").returncode == 1


def test_connection_refused_exits_61_with_one_line() -> None:
    result = run_cli("echo", "127.0.0.1", str(free_port()))
    assert result.returncode == 61
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "cannot connect" in lines[0]


def test_arguments_are_printed() -> None:
    with pynetdicom_scp() as port:
        result = run_cli("echo", "--arguments", "-aet", "ME", "127.0.0.1", str(port))
    assert result.returncode == 0, result.stderr
    assert "-aet" in result.stderr  # on stderr, as echoscu's (and `aiomove move`'s)
    assert "ME" in result.stderr


def test_rejected_association_exits_61() -> None:
    # pynetdicom (default config) rejects a called AE title it does not own only when asked to;
    # our own serve() does: run `aiomove` against a serve() in a subprocess via the library.
    code = (
        "import anyio, sys\n"
        "from aiomove.log import configure\n"
        "from aiomove.server import AcceptorConfig, serve\n"
        "configure('fatal')\n"
        "async def main():\n"
        "    async with anyio.create_task_group() as tg:\n"
        "        port = await tg.start(serve, AcceptorConfig(called_ae_titles=frozenset({'X'})))\n"
        "        print(port, flush=True)\n"
        "        await anyio.sleep_forever()\n"
        "anyio.run(main)\n"
    )
    server = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = server.stdout.readline().strip()
        result = run_cli("echo", "-aec", "NOTX", "127.0.0.1", port)
        ok = run_cli("echo", "-aec", "X", "127.0.0.1", port)
    finally:
        stop(server)
    assert result.returncode == 61
    assert "rejected" in result.stderr
    assert ok.returncode == 0, ok.stderr


def test_help_lists_the_shared_tls_options() -> None:
    """echo uses the TLS option table of move/find: profiles and seeds included."""
    result = run_cli("echo", "-h")
    assert result.returncode == 0
    for option in ("+tls", "+tla", "+pg", "+pm", "+rs", "+ws", "-rc", "-ic", "--log-json"):
        assert option in result.stdout


def test_tls_dependences_exit_1() -> None:
    profile = run_cli("echo", "+pm", "127.0.0.1", "104")
    assert profile.returncode == 1
    assert "--profile-8996-mod only allowed with --enable-tls or --anonymous-tls" in profile.stderr
    seed = run_cli("echo", "+tla", "--write-seed", "127.0.0.1", "104")
    assert seed.returncode == 1
    assert "--write-seed only allowed with --seed" in seed.stderr


def test_propose_ts_out_of_range_exits_1() -> None:
    assert run_cli("echo", "-pts", "4", "127.0.0.1", "104").returncode == 1
