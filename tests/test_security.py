"""Who can reach what: Kafka TLS/SASL on every client, the HTTP token, checkpoint names, DLQ copies."""
from __future__ import annotations

import base64
import json
import subprocess
import sys

import certifi
import pytest

import ops.clients
from model.documents import dlq_document, encode
from model.latest import CheckpointError, latest_version, point_latest
from ops.clients import producer, read_topic
from state.event import Rejection
from streams.settings import Settings
from streams.views import authorized

SASL = dict(broker="kafka://k1:9093", security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
            sasl_username="strata", sasl_password="pw", ssl_cafile=certifi.where())


def test_sasl_and_tls_settings_reach_every_client(monkeypatch):
    import kafka

    made = []

    class Capture:
        def __init__(self, *args, **conf):
            made.append((type(self).__name__, conf))

        def partitions_for_topic(self, topic):
            return None

        def close(self):
            pass

        def list_topics(self):
            return []

    monkeypatch.setattr(ops.clients, "KafkaProducer", type("KafkaProducer", (Capture,), {}))
    monkeypatch.setattr(ops.clients, "KafkaConsumer", type("KafkaConsumer", (Capture,), {}))
    monkeypatch.setattr(kafka, "KafkaAdminClient", type("KafkaAdminClient", (Capture,), {}))
    settings = Settings.from_env(**SASL)
    broker = settings.broker_info()

    producer(broker)
    producer(broker, restorable=True)
    with pytest.raises(ValueError, match="does not exist"):
        list(read_topic(broker, "profiles"))
    from streams.topics import create_topics

    with pytest.raises(Exception):  # the capture cannot create topics; the admin client was made first
        create_topics(settings)
    assert {name for name, _ in made} == {"KafkaProducer", "KafkaConsumer", "KafkaAdminClient"}
    for name, conf in made:
        assert conf["security_protocol"] == "SASL_SSL", name
        assert (conf["sasl_mechanism"], conf["sasl_plain_username"], conf["sasl_plain_password"]) == \
            ("SCRAM-SHA-512", "strata", "pw"), name
        assert conf["ssl_cafile"] == certifi.where() and conf["bootstrap_servers"] == ["k1:9093"], name

    from streams.app import faust_app

    creds = faust_app(settings).conf.broker_credentials
    assert (creds.username, creds.password, creds.mechanism.value) == ("strata", "pw", "SCRAM-SHA-512")
    assert creds.ssl_context is not None
    eos = faust_app(Settings.from_env(**SASL, processing_guarantee="exactly_once")).conf
    assert eos.processing_guarantee.value == "exactly_once" and eos.web_bind == "127.0.0.1"


def test_bad_security_settings_name_the_variable():
    with pytest.raises(ValueError, match="STRATA_SECURITY_PROTOCOL"):
        Settings.from_env(broker="kafka://k:1", security_protocol="TLS").broker_info()
    with pytest.raises(ValueError, match="STRATA_SASL_USERNAME"):
        Settings.from_env(broker="kafka://k:1", security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN").broker_info()
    with pytest.raises(ValueError, match="embedded broker"):
        Settings.from_env(broker="tansu://127.0.0.1:1", processing_guarantee="exactly_once").broker_info()
    with pytest.raises(ValueError, match="STRATA_WINDOW_MAX_BYTES"):
        Settings.from_env(window_max_bytes=5_000_000)


def test_http_bearer_token_is_checked():
    assert authorized(None, None) and authorized("", "anything")
    assert authorized("s3cret", "Bearer s3cret") and authorized("s3cret", "bearer s3cret")
    for header in (None, "", "Bearer", "Bearer s3cre", "Basic s3cret", "Bearer s3cret2"):
        assert not authorized("s3cret", header), header


def test_latest_must_name_a_version_directory_inside_the_root(tmp_path):
    assert latest_version(tmp_path) is None
    point_latest(tmp_path, "20261129T0930-3f2a")
    assert latest_version(tmp_path) == "20261129T0930-3f2a"
    for bad in ("../outside", "/etc", "a/b", "..", ".hidden", "x" * 200, "v1\x00"):
        (tmp_path / "LATEST").write_text(bad + "\n")
        with pytest.raises(CheckpointError, match="not a version directory"):
            latest_version(tmp_path)
        with pytest.raises(CheckpointError):
            point_latest(tmp_path, bad)


def test_dlq_copy_is_bounded_scrubbed_and_keeps_the_size():
    value = ('{"text": "call 13812345678 or mail a.b@example.com", "pad": "' + "x" * 2_000_000 + '"}').encode()
    value = b"\xff\xfe" + value  # not even UTF-8: the bytes around the PII survive untouched
    record = encode(dlq_document(Rejection("too_large", "record is too big"), "events.browse", 2, 7, value, 8192, 0))
    doc = json.loads(record)
    raw = base64.b64decode(doc["raw"])
    assert len(record) < 16_000 and doc["raw_bytes"] == len(value) and len(raw) <= 8192
    assert raw.startswith(b"\xff\xfe") and b"13812345678" not in raw and b"a.b@example.com" not in raw
    assert doc["source"] == {"topic": "events.browse", "partition": 2, "offset": 7}
    assert doc["error"]["code"] == "too_large" and doc["schema_version"] == 1


def test_a_baseline_worker_does_not_import_torch(tmp_path):
    code = (
        "import sys\n"
        "from streams.settings import Settings\n"
        "from streams import worker, ingest, profiler, views\n"
        "from streams.app import build\n"
        f"s = Settings.from_env(broker='tansu://127.0.0.1:1', data_dir={str(tmp_path)!r}, profile_model='baseline')\n"
        "strata = build(s, worker.model_slot(s))\n"
        "for part in (ingest, profiler, views): part.register(strata)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_dlq_copy_sees_through_escapes_and_full_width_digits():
    raw = '{"text": "mail li\\u0040example.com or call １３８１２３４５６７８ or \\u0031\\u0033\\u0038\\u0031\\u0032\\u0033\\u0034\\u0035\\u0036\\u0037\\u0038"}'
    doc = dlq_document(Rejection("bad_json", "x"), "events.browse", 0, 1, raw.encode(), 8192, 0)
    kept = base64.b64decode(doc["raw"]).decode()
    assert "example.com" not in kept and "5678" not in kept and kept.count("<PHONE>") == 2
