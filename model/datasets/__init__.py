"""Data sets as Strata events: each module converts one source into events.jsonl (+ items, taxonomy)."""
