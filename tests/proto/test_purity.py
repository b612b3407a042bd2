"""The sans-IO core imports no I/O, clock, logging or framework modules (ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import aiomove.proto

FORBIDDEN = {
    "anyio",
    "trio",
    "asyncio",
    "socket",
    "ssl",
    "select",
    "selectors",
    "threading",
    "multiprocessing",
    "subprocess",
    "time",
    "datetime",
    "os",
    "io",
    "pathlib",
    "shutil",
    "tempfile",
    "logging",
    "structlog",
    "typer",
    "click",
    "signal",
    "random",
}
ALLOWED_AIOMOVE = ("aiomove.proto", "aiomove.errors")

PROTO_DIR = Path(aiomove.proto.__file__).parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level and node.module:  # relative import: inside aiomove.proto
                names.add("aiomove.proto." + node.module)
            elif node.level:
                names.update("aiomove.proto." + alias.name for alias in node.names)
            elif node.module:
                names.add(node.module)
    return names


def test_core_files_exist() -> None:
    files = {p.name for p in PROTO_DIR.glob("*.py")}
    assert {"pdu.py", "codec.py", "framer.py", "fsm.py", "connection.py", "dimse.py"} <= files


def test_core_imports_no_io_modules() -> None:
    for path in sorted(PROTO_DIR.glob("*.py")):
        for name in imported_modules(path):
            top = name.split(".")[0]
            assert top not in FORBIDDEN, f"{path.name} imports {name}"
            if top == "aiomove":
                assert name.startswith(ALLOWED_AIOMOVE), f"{path.name} imports {name}"


def test_the_checker_catches_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import socket\nfrom anyio import sleep\nfrom . import codec\n")
    assert imported_modules(bad) == {"socket", "anyio", "aiomove.proto.codec"}
