"""The Kafka-facing side: broker, topics, the Faust app, agents, tables, timers, web views, CLI."""
