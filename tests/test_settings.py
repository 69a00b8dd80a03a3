import asyncio
from dataclasses import fields

import pytest

from streams.settings import Broker, BrokerURLError, Settings


def test_broker_urls():
    b = Broker.parse("tansu://127.0.0.1:9092")
    assert b.embedded and b.bootstrap == ["127.0.0.1:9092"]
    b = Broker.parse("kafka://k1:9092,k2:9093")
    assert not b.embedded and b.faust_url == "kafka://k1:9092;kafka://k2:9093"
    assert Broker.parse("k1:9092").bootstrap == ["k1:9092"]
    for bad in ("http://x:1", "kafka://nohost", "", "tansu://a:1,kafka://b:2"):
        with pytest.raises(BrokerURLError):
            Broker.parse(bad)


def test_settings_from_env_and_overrides(monkeypatch):
    monkeypatch.setenv("STRATA_PARTITIONS", "8")
    monkeypatch.setenv("STRATA_TOPIC_PREFIX", "t1.")
    monkeypatch.setenv("STRATA_PROFILE_INTERVAL_S", "0.5")
    s = Settings.from_env(web_port=7000, partitions=None)
    assert (s.partitions, s.web_port, s.profile_interval_s) == (8, 7000, 0.5)
    assert s.topic("profiles") == "t1.profiles"
    with pytest.raises(BrokerURLError, match="--broker"):
        s.broker_info()


NUMERIC = [f.name for f in fields(Settings) if type(f.default) in (int, float)]


@pytest.mark.parametrize("name", NUMERIC)
def test_a_numeric_setting_that_does_not_parse_names_its_variable(monkeypatch, name):
    monkeypatch.setenv(f"STRATA_{name.upper()}", "lots")
    with pytest.raises(ValueError) as caught:
        Settings.from_env()
    expected = "an integer" if type(getattr(Settings, name)) is int else "a finite number"
    assert str(caught.value) == f"STRATA_{name.upper()}: expected {expected}, got 'lots'"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_float_settings_must_be_finite(monkeypatch, value):
    monkeypatch.setenv("STRATA_MAX_FUTURE_S", value)  # nan would pass its `not negative` check
    with pytest.raises(ValueError, match=f"STRATA_MAX_FUTURE_S: expected a finite number, got '{value}'"):
        Settings.from_env()


def test_connect_timeout_is_read_and_checked(monkeypatch):
    monkeypatch.setenv("STRATA_CONNECT_TIMEOUT_S", "0.5")
    assert Settings.from_env().connect_timeout_s == 0.5
    monkeypatch.setenv("STRATA_CONNECT_TIMEOUT_S", "0")
    with pytest.raises(ValueError, match="STRATA_CONNECT_TIMEOUT_S=0.0: must be above 0"):
        Settings.from_env()


def test_the_worker_consumer_fetches_with_the_brokers_wait():
    """The embedded broker holds fetches for much of their wait: the worker's consumer waits 100 ms
    there, and keeps Faust's own wait on Kafka."""
    from streams.app import faust_app

    async def wait_ms(url: str) -> int:
        app = faust_app(Settings.from_env(broker=url))
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        try:
            return consumer._fetch_max_wait_ms
        finally:
            await consumer.stop()

    assert asyncio.run(wait_ms("tansu://127.0.0.1:9")) == Broker.parse("tansu://127.0.0.1:9").fetch_max_wait_ms == 100
    assert asyncio.run(wait_ms("kafka://127.0.0.1:9")) == 1500
