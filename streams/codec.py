"""How Strata encodes the JSON records it publishes: UTF-8, no ASCII escapes (Chinese stays 3 bytes a char)."""
from __future__ import annotations

import json


def encode(doc) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")
