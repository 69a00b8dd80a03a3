"""Operator tooling above the Faust app: the `strata` CLI, demo, benchmarks, soak, the embedded
broker and worker processes, plain Kafka clients."""
