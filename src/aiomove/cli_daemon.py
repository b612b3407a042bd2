"""`aiomove daemon` and `aiomove jobs submit|list|show|cancel|pause|resume|retry`.

    aiomove daemon --config aiomove.toml [--store URL] [--port N] [--http-port N] ...
    aiomove jobs submit --config aiomove.toml --peer MAIN --input studies.csv
    aiomove jobs submit --store sqlite+aiosqlite:///jobs.db --peer MAIN -k AccessionNumber=A1
    aiomove jobs list [--state running] ; aiomove jobs show 12 ; aiomove jobs cancel 12

The `jobs` commands work on the job store directly (the daemon need not run); `--config`
gives the store URL and the peer names to check, `--store` (or AIOMOVE_STORE) the URL alone.
`submit` takes what `aiomove retrieve` takes: `--input FILE` (a CSV column or one key per line:
StudyInstanceUIDs, AccessionNumbers or PatientIDs; one STUDY job each) or `-k KEY=VALUE`
keys (one job). Results are JSON on stdout. Exit codes: 0 ok, 1 bad input, 2 no such job /
not possible in its state. asyncio only.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aiomove.daemon.config import ConfigError, DaemonConfig, load_config
from aiomove.daemon.jobs import Job, JobState
from aiomove.daemon.specs import ACTION_FROM, SpecError, job_json, make_spec
from aiomove.keys import KEY_TYPES
from aiomove.log import configure
from aiomove.query import QueryError
from aiomove.runner import run_async

if TYPE_CHECKING:
    from aiomove.daemon.store import JobStore

EXIT_OK = 0
EXIT_INPUT = 1
EXIT_STATE = 2

jobs_app = typer.Typer(
    name="jobs",
    help="Submit, list and control the daemon's retrieve jobs (works on the job store).",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="The daemon's TOML configuration.")
]
StoreOption = Annotated[
    str | None,
    typer.Option("--store", help="Job store URL (default: the config's, or AIOMOVE_STORE)."),
]


def _fail(message: str, code: int = EXIT_INPUT) -> typer.Exit:
    sys.stderr.write(f"aiomove: error: {message}\n")
    return typer.Exit(code)


def _echo(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


# --- aiomove daemon --------------------------------------------------------------------------


def daemon_command(
    config: ConfigOption = None,
    store: StoreOption = None,
    output: Annotated[Path | None, typer.Option(help="Output directory.")] = None,
    ae_title: Annotated[str | None, typer.Option("--ae-title")] = None,
    port: Annotated[int | None, typer.Option(help="Storage SCP port.")] = None,
    http_port: Annotated[int | None, typer.Option(help="HTTP API port (0: none).")] = None,
    http_host: Annotated[str | None, typer.Option(help="HTTP API address.")] = None,
    workers: Annotated[int | None, typer.Option(help="Jobs run at once.")] = None,
    worker_id: Annotated[str | None, typer.Option(help="Lease owner name.")] = None,
    log_level: Annotated[str | None, typer.Option(help="fatal|error|warn|info|debug")] = None,
) -> None:
    """Run the retrieval daemon: Storage SCP, job workers, HTTP API (until SIGTERM)."""
    from aiomove.daemon.service import run_daemon

    overrides = {
        "store": store,
        "output": output,
        "ae_title": ae_title,
        "port": port,
        "http_port": http_port,
        "http_host": http_host,
        "workers": workers,
        "worker_id": worker_id,
        "log_level": log_level,
    }
    try:
        settings = load_config(config, overrides=overrides)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    configure(settings.log_level, json=settings.log_json)
    run_async(run_daemon, settings)


# --- aiomove jobs ----------------------------------------------------------------------------


def _settings(config: Path | None, store: str | None) -> DaemonConfig:
    try:
        return load_config(config, overrides={"store": store}, need_output=False)
    except ConfigError as exc:
        raise _fail(str(exc)) from None


def _with_store(settings: DaemonConfig, work: Callable[[JobStore], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        from aiomove.daemon.store import open_store

        store = await open_store(settings.store)
        try:
            return await work(store)
        finally:
            await store.close()

    return run_async(main)


def _job(job: Job) -> dict[str, Any]:
    return job_json(job)


def _peers(settings: DaemonConfig) -> list[str] | None:
    return sorted(settings.peers) if settings.peers else None


@jobs_app.command("submit")
def submit_command(
    peer: Annotated[str, typer.Option("--peer", "-p", help="Configured peer name.")],
    input_file: Annotated[
        Path | None,
        typer.Option("--input", "-i", help="CSV (header names the column) or one key per line."),
    ] = None,
    key_type: Annotated[
        str | None, typer.Option(help="What --input lists: study, accession or patient.")
    ] = None,
    keys: Annotated[
        list[str] | None, typer.Option("--key", "-k", help="KEY=VALUE (repeatable): one job.")
    ] = None,
    level: Annotated[str, typer.Option(help="Q/R level of a -k job.")] = "STUDY",
    priority: Annotated[int, typer.Option(help="Higher runs first.")] = 0,
    max_attempts: Annotated[int | None, typer.Option(help="Attempts before failing.")] = None,
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """Submit retrieve jobs (duplicates of active jobs are not created again)."""
    from aiomove.keys import read_keys

    settings = _settings(config, store)
    if (input_file is None) == (not keys):
        raise _fail("give either --input FILE or -k KEY=VALUE keys")
    if key_type is not None and key_type not in KEY_TYPES:
        raise _fail(f"--key-type must be one of {', '.join(KEY_TYPES)}")
    try:
        if input_file is not None:
            keyword, values = read_keys(input_file, key_type)
            specs = [
                make_spec(peer, "STUDY", {keyword: v}, priority=priority, peers=_peers(settings))
                for v in values
            ]
        else:
            pairs = dict(_pair(k) for k in keys or [])
            specs = [make_spec(peer, level, pairs, priority=priority, peers=_peers(settings))]
    except (QueryError, SpecError) as exc:
        raise _fail(str(exc)) from None
    attempts = max_attempts or settings.max_attempts

    async def work(js: JobStore) -> list[dict[str, Any]]:
        out = []
        for spec in specs:
            job, created = await js.submit(spec, max_attempts=attempts)
            out.append({"id": job.id, "created": created, "state": str(job.state)})
        return out

    _echo({"jobs": _with_store(settings, work)})


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise SpecError(f"-k {text!r}: use KEY=VALUE, e.g. StudyInstanceUID=1.2.3")
    return key.strip(), value.strip()


@jobs_app.command("list")
def list_command(
    state: Annotated[str | None, typer.Option(help="Only jobs in this state.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    offset: Annotated[int, typer.Option(help="Skip this many.")] = 0,
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """List jobs (JSON)."""
    settings = _settings(config, store)
    try:
        wanted = None if state is None else JobState(state)
    except ValueError:
        raise _fail(f"--state must be one of {', '.join(map(str, JobState))}") from None

    async def work(js: JobStore) -> list[Job]:
        return await js.list(state=wanted, limit=limit, offset=offset)

    _echo({"jobs": [_job(j) for j in _with_store(settings, work)]})


@jobs_app.command("show")
def show_command(
    job_id: Annotated[int, typer.Argument(help="Job id.")],
    receipts: Annotated[bool, typer.Option(help="Also list the received instances.")] = False,
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """One job with its progress (JSON)."""
    settings = _settings(config, store)

    async def work(js: JobStore) -> dict[str, Any] | None:
        job = await js.get(job_id)
        if job is None:
            return None
        data = _job(job)
        if receipts:
            data["receipts"] = [
                {"sop_instance_uid": r.sop_instance_uid, "path": r.path, "size": r.size}
                for r in await js.receipts(job_id)
            ]
        return data

    data = _with_store(settings, work)
    if data is None:
        raise _fail(f"no job {job_id}", EXIT_STATE)
    _echo(data)


def _action(name: str) -> Callable[..., None]:
    def command(
        job_id: Annotated[int, typer.Argument(help="Job id.")],
        config: ConfigOption = None,
        store: StoreOption = None,
    ) -> None:
        settings = _settings(config, store)

        async def work(js: JobStore) -> Job | str:
            before = await js.get(job_id)
            if before is None:
                return f"no job {job_id}"
            if before.state not in ACTION_FROM[name]:
                return f"cannot {name} job {job_id}: it is {before.state}"
            method: Callable[[int], Awaitable[Job | None]] = getattr(js, name)
            return await method(job_id) or f"no job {job_id}"

        job = _with_store(settings, work)
        if isinstance(job, str):
            raise _fail(job, EXIT_STATE)
        _echo(_job(job))

    command.__doc__ = f"{name.capitalize()} a job (a running one stops at its next heartbeat)."
    return command


for _name in ("cancel", "pause", "resume", "retry"):
    jobs_app.command(_name)(_action(_name))


def register(app: typer.Typer) -> None:
    """Add `daemon` and `jobs` to the `aiomove` command."""
    app.command("daemon")(daemon_command)
    app.add_typer(jobs_app, name="jobs")


def _standalone() -> typer.Typer:
    app = typer.Typer(
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    register(app)
    return app


if __name__ == "__main__":
    configure("warn")
    _standalone()()
