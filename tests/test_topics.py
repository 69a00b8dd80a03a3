from streams.settings import Settings
from streams.topics import partition_for, topic_specs

# Java's Utils.murmur2 on these bytes (Kafka's own unit test vectors), as signed 32-bit ints.
JAVA_MURMUR2 = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536,
                b"a-little-bit-longer-string": -1486304829, b"abc": 479470107,
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971}


def test_partition_for_is_the_java_default_partitioner():
    for key, h in JAVA_MURMUR2.items():
        for n in (1, 4, 7, 12):
            assert partition_for(key, n) == (h & 0x7FFFFFFF) % n


def test_outputs_are_compacted_and_the_dlq_expires():
    specs = {s.name: s for s in topic_specs(Settings.from_env(partitions=6, dlq_retention_days=2))}
    assert specs["profiles"].config == {"cleanup.policy": "compact"} == specs["items"].config
    assert specs["events.dlq"].config == {"retention.ms": str(2 * 86400_000)}
    assert {s.partitions for s in specs.values()} == {6}
