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
