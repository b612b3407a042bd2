"""The daemon's pure parts: configuration, schedules, retry classification, job specs."""

from __future__ import annotations

import json
import ssl
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trustme

from aiomove.daemon import retry
from aiomove.daemon.config import ConfigError, RetryPolicy, load_config
from aiomove.daemon.schedule import Schedule, ScheduleError
from aiomove.daemon.specs import SpecError, make_spec
from aiomove.errors import (
    AcseTimeout,
    AssociationAborted,
    AssociationRejected,
    ConnectError,
    NoAcceptedContext,
    StatusError,
)
from aiomove.proto import uids
from tests.daemon.daemon_util import write_config

UID = "1.2.840.113619.2.55.3"


def test_config_file_environment_and_flags(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "a.toml",
        {"store": "sqlite+aiosqlite:///x.db", "output": "data", "workers": 2, "http_port": 9000},
        {
            "MAIN": {
                "host": "pacs",
                "port": 104,
                "ae_title": "PACS",
                "model": "patient",
                "max_associations": 3,
                "schedule": ["mon-fri 19:00-07:00", "sat-sun"],
                "timezone": "Europe/Berlin",
            }
        },
        base=1.0,
        max_delay=30,
    )
    env = {"AIOMOVE_WORKERS": "7", "AIOMOVE_LOG_JSON": "false", "AIOMOVE_AE_TITLE": "ME"}
    config = load_config(path, environ=env, overrides={"http_port": 0, "port": None})
    assert config.output == tmp_path / "data"  # relative to the file
    assert config.workers == 7  # environment over file
    assert config.http_port == 0  # flag over file
    assert config.port == 11112  # None: not given
    assert config.log_json is False
    assert config.owner.startswith("ME@")
    peer = config.peer("MAIN")
    assert peer.move_model == uids.PATIENT_ROOT_QR_MOVE
    assert peer.max_associations == 3
    assert peer.peer().ae_title == "PACS"
    assert peer.schedule.timezone == "Europe/Berlin"
    assert config.retry == RetryPolicy(base=1.0, max_delay=30.0)
    with pytest.raises(ConfigError, match="unknown peer"):
        config.peer("OTHER")


@pytest.mark.parametrize(
    ("daemon", "peers", "message"),
    [
        ({"output": "o"}, {}, "store is required"),
        ({"store": "s", "output": "o", "colour": 1}, {}, "unknown key"),
        ({"store": "s", "output": "o", "workers": "many"}, {}, "not a valid int"),
        ({"store": "s", "output": "o", "workers": 0}, {}, "at least 1"),
        ({"store": "s", "output": "o", "layout": "{PatientID}.dcm"}, {}, "SOPInstanceUID"),
        ({"store": "s", "output": "o"}, {"P": {"host": "h", "port": 1}}, "ae_title is required"),
        (
            {"store": "s", "output": "o"},
            {"P": {"host": "h", "port": 1, "ae_title": "A", "schedule": "someday"}},
            "unknown day",
        ),
        (
            {"store": "s", "output": "o"},
            {"P": {"host": "h", "port": 1, "ae_title": "A", "model": "worklist"}},
            "model",
        ),
    ],
)
def test_config_errors_name_the_key(
    tmp_path: Path, daemon: dict[str, object], peers: dict[str, dict[str, object]], message: str
) -> None:
    path = write_config(tmp_path / "bad.toml", daemon, peers)
    with pytest.raises(ConfigError, match=message):
        load_config(path, environ={})


def tls_files(tmp_path: Path, password: bytes | None = None) -> trustme.CA:
    """ca.pem, and me.pem + me.key for "aiomove.test" (the key encrypted with `password`)."""
    from cryptography.hazmat.primitives import serialization

    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    cert = ca.issue_cert("aiomove.test")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "me.pem"))
    key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), password=None)
    encryption: serialization.KeySerializationEncryption = (
        serialization.NoEncryption()
        if password is None
        else serialization.BestAvailableEncryption(password)
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    (tmp_path / "me.key").write_bytes(pem)
    return ca


def tls_config(tmp_path: Path, peer_tls: str = "", security: str = "") -> Path:
    path = tmp_path / "tls.toml"
    text = '[daemon]\nstore = "s"\noutput = "o"\n[peers.P]\nhost = "h"\nport = 2762\n'
    text += 'ae_title = "A"\n'
    if peer_tls:
        text += "[peers.P.tls]\n" + peer_tls
    if security:
        text += "[security]\n" + security
    path.write_text(text)
    return path


def test_tls_settings_build_one_client_context(tmp_path: Path) -> None:
    tls_files(tmp_path)
    path = tls_config(tmp_path, 'ca_file = "ca.pem"\ncert_file = "me.pem"\nkey_file = "me.key"\n')
    config = load_config(path, environ={}).peer("P")
    peer = config.peer()
    assert isinstance(peer.ssl_context, ssl.SSLContext)
    assert config.peer().ssl_context is peer.ssl_context  # built once, at load time
    assert peer.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert not peer.ssl_context.check_hostname  # DICOM TLS: the chain, not host names
    assert peer.ssl_context.minimum_version == ssl.TLSVersion.TLSv1_2  # BCP 195 RFC 8996
    assert config.tls is not None
    assert config.tls.ca_files == (str(tmp_path / "ca.pem"),)


@pytest.mark.parametrize(
    ("verify", "mode"),
    [
        ('"false"', ssl.CERT_NONE),  # a string: the typed conversion, not bool("false")
        ("false", ssl.CERT_NONE),
        ('"ignore"', ssl.CERT_NONE),
        ("true", ssl.CERT_REQUIRED),
        ('"require"', ssl.CERT_REQUIRED),
    ],
)
def test_tls_verify_values(tmp_path: Path, verify: str, mode: ssl.VerifyMode) -> None:
    tls_files(tmp_path)
    path = tls_config(tmp_path, f'ca_file = "ca.pem"\nverify = {verify}\n')
    context = load_config(path, environ={}).peer("P").ssl_context
    assert context is not None
    assert context.verify_mode == mode


def test_encrypted_keys_need_a_password_and_never_prompt(tmp_path: Path) -> None:
    tls_files(tmp_path, password=b"s3cret")
    files = 'cert_file = "me.pem"\nkey_file = "me.key"\n'
    with pytest.raises(ConfigError, match=r"\[peers.P.tls\].*wrong password"):
        load_config(tls_config(tmp_path, files), environ={})  # no prompt: stdin is not read
    good = load_config(tls_config(tmp_path, files + 'password = "s3cret"\n'), environ={})
    assert good.peer("P").ssl_context is not None


@pytest.mark.parametrize(
    ("tls", "message"),
    [
        ('verify = "maybe"', "verify"),
        ('profile = "nonsense"', "profile"),
        ('ca_file = "missing.pem"', "cannot read certificate file"),
        ('colour = "red"', "unknown TLS setting"),
    ],
)
def test_tls_errors_are_config_errors(tmp_path: Path, tls: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(tls_config(tmp_path, tls + "\n"), environ={})


def test_security_table_maps_onto_the_storage_scp_options(tmp_path: Path) -> None:
    from aiomove.accesscontrol import AccessPolicy

    tls_files(tmp_path)
    security = (
        'accept_aet = ["PACS", "OTHER"]\naccept_network = ["10.0.0.0/8", "[::1]/128"]\n'
        "max_associations = 3\nidle_timeout = 0\nmin_rate = 10\nmax_instance_size = 2\n"
        'min_free_space = 5\naccess_control = "yes"\nhosts_allow = "allow"\n'
        '[security.tls]\ncert_file = "me.pem"\nkey_file = "me.key"\nca_file = "ca.pem"\n'
        'verify = "verify-if-present"\n'
    )
    config = load_config(tls_config(tmp_path, security=security), environ={})
    acceptor = config.security["acceptor"]
    assert acceptor["calling_ae_titles"] == frozenset({"PACS", "OTHER"})
    assert [str(n) for n in acceptor["allowed_networks"]] == ["10.0.0.0/8", "::1/128"]
    assert (acceptor["max_associations"], acceptor["idle_timeout"]) == (3, None)
    policy = acceptor["access"]
    assert isinstance(policy, AccessPolicy)
    assert (policy.daemon, policy.allow_file) == ("movescu", tmp_path / "allow")
    assert config.security["sink"] == {"max_instance_size": 2 << 20, "min_free_bytes": 5 << 20}
    assert config.security["handler"] == {"min_rate": 10}
    assert config.ssl_context is not None
    assert config.ssl_context.verify_mode == ssl.CERT_OPTIONAL
    assert config.only_moved is True  # the default
    plain = load_config(tls_config(tmp_path), environ={"AIOMOVE_ONLY_MOVED": "false"})
    assert plain.only_moved is False
    assert plain.ssl_context is None
    assert "calling_ae_titles" not in plain.security["acceptor"]


@pytest.mark.parametrize(
    ("security", "message"),
    [
        ("colour = 1", "unknown key"),
        ("max_associations = 0", "out of range"),
        ("min_rate = -1", "out of range"),
        ('accept_network = ["not-a-network"]', "accept-network"),
        ("accept_aet = [1]", "list of strings"),
        ('accept_aet = ["SEVENTEEN_CHARS_X"]', "1 to 16"),
        ('access_control = "perhaps"', "not a valid bool"),
        ('[security.tls]\ncert_file = "me.pem"', "private key and a certificate"),
    ],
)
def test_security_errors_are_config_errors(tmp_path: Path, security: str, message: str) -> None:
    tls_files(tmp_path)
    with pytest.raises(ConfigError, match=message):
        load_config(tls_config(tmp_path, security=security + "\n"), environ={})


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_schedule_windows() -> None:
    nights = Schedule.parse(["mon-fri 19:00-07:00", "sat-sun"])
    assert nights.is_open(at("2026-11-23T20:00"))  # Monday evening
    assert nights.is_open(at("2026-11-24T06:59"))  # Tuesday early: Monday's window
    assert not nights.is_open(at("2026-11-24T07:00"))
    assert not nights.is_open(at("2026-11-23T06:00"))  # Monday early: Sunday ... is weekend
    assert nights.is_open(at("2026-11-22T12:00"))  # Sunday
    assert not nights.is_open(at("2026-11-27T12:00"))  # Friday noon
    assert Schedule.parse([]).is_open(at("2026-11-27T12:00"))
    berlin = Schedule.parse(["09:00-10:00"], "Europe/Berlin")
    assert berlin.is_open(at("2026-11-27T08:30"))  # 09:30 in Berlin (UTC+1)
    assert Schedule.parse(["fri-mon 00:00-24:00"]).is_open(at("2026-11-24T00:00")) is False
    for bad in ("mon-fri 25:00-26:00", "funday", "mon 1-2 3", "24:00-01:00"):
        with pytest.raises(ScheduleError):
            Schedule.parse([bad])


@pytest.mark.parametrize(
    ("exc", "kind", "label"),
    [
        (AssociationRejected(2, 1, 1), "transient", "rejected_transient"),
        (AssociationRejected(1, 1, 7), "permanent", "rejected_permanent"),
        (StatusError(0xA701), "transient", "0xA701"),
        (StatusError(0xA702), "transient", "0xA702"),
        (StatusError(0xA801), "permanent", "0xA801"),
        (StatusError(0xA700), "transient", "0xA700"),
        (StatusError(0xFE00), "transient", "0xFE00"),
        (StatusError(0xA900), "permanent", "0xA900"),
        (StatusError(0x0122), "permanent", "0x0122"),
        (StatusError(0xC000), "permanent", "0xC000"),
        (StatusError(0xC123), "permanent", "0xC123"),
        (ConnectError("refused"), "transient", "ConnectError"),
        (AcseTimeout("late"), "transient", "AcseTimeout"),
        (AssociationAborted("gone"), "transient", "AssociationAborted"),
        (ConnectionResetError(), "transient", "ConnectionResetError"),
        (NoAcceptedContext("no"), "permanent", "NoAcceptedContext"),
        (KeyError("bug"), "permanent", "KeyError"),
    ],
)
def test_failure_classification(exc: BaseException, kind: str, label: str) -> None:
    failure = retry.for_exception(exc)
    assert (failure.kind, failure.label) == (kind, label)
    assert "\n" not in failure.message


def test_backoff_grows_exponentially_and_is_capped() -> None:
    policy = RetryPolicy(base=2.0, factor=3.0, max_delay=50.0, jitter=0.1)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [2.0, 6.0, 18.0, 50.0]
    assert policy.delay(1, random=0.0) == pytest.approx(1.8)
    assert policy.delay(1, random=0.999) == pytest.approx(2.2, abs=0.01)


def test_job_specs() -> None:
    spec = make_spec("MAIN", "study", {"AccessionNumber": "A1"}, peers=["MAIN"])
    assert (spec.level, dict(spec.keys)) == ("STUDY", {"AccessionNumber": "A1"})
    image = {"StudyInstanceUID": UID, "SeriesInstanceUID": UID + ".1", "SOPInstanceUID": UID + ".2"}
    assert make_spec("MAIN", "IMAGE", image).level == "IMAGE"
    bad = [
        (("OTHER", "STUDY", {"StudyInstanceUID": UID}), "unknown peer"),
        (("MAIN", "FRAME", {"StudyInstanceUID": UID}), "level"),
        (("MAIN", "STUDY", {}), "non-empty"),
        (("MAIN", "STUDY", {"StudyInstanceUID": "1.02"}), "not a valid UID"),
        (("MAIN", "STUDY", {"PatientID": "P*"}), "exact value"),
        (("MAIN", "STUDY", {"Colour": "red"}), "not a DICOM keyword"),
        (("MAIN", "STUDY", {"Modality": "CT"}), "needs one of"),
        (("MAIN", "SERIES", {"StudyInstanceUID": UID}), "SeriesInstanceUID"),
    ]
    for args, message in bad:
        with pytest.raises(SpecError, match=message):
            make_spec(*args, peers=["MAIN"])


def test_docker_files_agree() -> None:
    """docker/: the daemon config loads with each worker's environment, and Orthanc knows
    every worker as a move destination on the port the worker listens on."""
    docker = Path(__file__).parents[2] / "docker"
    compose = (docker / "compose.yaml").read_text()
    modalities = json.loads((docker / "orthanc.json").read_text())["DicomModalities"]
    for n in (1, 2):
        env = {
            "AIOMOVE_STORE": "postgresql+asyncpg://aiomove:aiomove@postgres:5432/aiomove",
            "AIOMOVE_AE_TITLE": f"AIOMOVE{n}",
            "AIOMOVE_WORKER_ID": f"aiomove-{n}",
            "AIOMOVE_OUTPUT": f"/data/aiomove-{n}",
        }
        for key, value in env.items():
            assert f"{key}: {value}" in compose
        config = load_config(docker / "aiomove.toml", environ=env)
        assert config.http_host == "0.0.0.0"
        assert config.owner == f"aiomove-{n}"
        peer = config.peer("ORTHANC")
        assert (peer.host, peer.port, peer.max_associations) == ("orthanc", 4242, 2)
        destination = modalities[config.ae_title]
        assert destination == {"AET": config.ae_title, "Host": f"aiomove-{n}", "Port": config.port}
    assert "HEALTHCHECK" in (docker / "daemon.Dockerfile").read_text()


def test_job_store_errors_are_transient() -> None:
    import sqlalchemy.exc

    error = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed"))
    assert retry.for_exception(error).kind is retry.Kind.TRANSIENT
