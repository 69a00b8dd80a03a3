"""Forecast samples: each user's history cut at several moments. The input is the window before
the cut (as the worker would see it: categories hidden or text blanked where the protocol says);
the target is each layer's category distribution in its horizon after the cut, counted from the
labels the events really carry. Users are split into train / validation / test."""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from model.features import future_targets
from model.profile import Horizons
from model.taxonomy import LAYERS, Taxonomy
from model.training.data import Histories
from state.window import Entry


@dataclass
class Sample:
    user: str
    window: list[Entry]
    targets: dict[str, np.ndarray]
    span: tuple[int, int]  # where `window` lies in the list of input entries make_samples returns


def make_samples(histories: Histories, inputs: Histories, taxonomy: Taxonomy, horizons: Horizons, cuts: int,
                 min_history: int, max_events: int, rng: random.Random) -> tuple[list[Sample], list[Entry]]:
    """(samples, every input entry in one list that the samples' spans index). `inputs`: the same
    histories as the model may see them (same events, same order)."""
    samples, flat = [], []
    for user in sorted(histories):
        entries, seen = histories[user], inputs[user]
        offset = len(flat)
        flat.extend(seen)
        if len(entries) <= min_history:
            continue
        positions = list(range(min_history, len(entries)))
        if len(positions) > cuts:
            positions = sorted(rng.sample(positions, cuts))
        for i in positions:
            targets = future_targets(entries[i:], entries[i - 1].ts, taxonomy, horizons)
            if any(t.sum() > 0 for t in targets.values()):
                start = max(0, i - max_events)
                samples.append(Sample(user, seen[start:i], targets, (offset + start, offset + i)))
    return samples, flat


def split_users(users: list[str], rng: random.Random, val: float = 0.15, test: float = 0.15):
    users = sorted(users)
    rng.shuffle(users)
    n_test, n_val = int(len(users) * test), int(len(users) * val)
    return set(users[n_test + n_val:]), set(users[n_test:n_test + n_val]), set(users[:n_test])


def stack_targets(samples: list[Sample]) -> dict[str, np.ndarray]:
    return {layer: np.stack([s.targets[layer] for s in samples]) for layer in LAYERS}


def user_batches(samples: list[Sample], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Batches of sample indices, a few users at a time: users in random order, each user's cuts
    together, batches shuffled. A user's cuts share most of their events, so a batch holds ~4x
    fewer distinct texts than a uniform shuffle, and the text encoder (most of a step's time)
    does ~4x less work."""
    by_user: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        by_user.setdefault(s.user, []).append(i)
    users = sorted(by_user)
    rng.shuffle(users)
    order = [i for u in users for i in by_user[u]]
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches
