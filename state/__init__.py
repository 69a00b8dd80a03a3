"""Per-user and per-item state: events, windows, their encoding and bounds. No Kafka, no torch."""
