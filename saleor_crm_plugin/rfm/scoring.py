"""Quintile cut points and scores (pure), the reference the SQL engine must agree with.

Why cut points and not ``NTILE``: ``NTILE(5)`` deals rows into five equal buckets and splits a
run of equal values across two buckets, so two customers with the same frequency could get
different scores. Here the four cut points are ``percentile_disc`` at 20/40/60/80 % (the same
definition as PostgreSQL's: the first value whose cumulative position reaches the fraction),
and a value's score is 1 + the number of cut points it exceeds. Equal values can never get
different scores, and storing the cut points explains every score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import TypeVar

FRACTIONS = (0.2, 0.4, 0.6, 0.8)

T = TypeVar("T", int, Decimal)


def cut_points(values: Sequence[T]) -> list[T]:
    """``percentile_disc(FRACTIONS)`` of ``values`` (empty for no values)."""
    ordered = sorted(values)
    n = len(ordered)
    if not n:
        return []
    # Same float arithmetic as PostgreSQL: rownum = ceil(fraction * n), at least 1.
    return [ordered[max(math.ceil(fraction * n), 1) - 1] for fraction in FRACTIONS]


def ascending_score(value: T, cuts: Sequence[T]) -> int:
    """1..5: higher values score higher (frequency, monetary)."""
    return 1 + sum(1 for cut in cuts if value > cut)


def recency_score(days: int, cuts: Sequence[int]) -> int:
    """1..5, inverted: the most recent buyers (fewest days) score 5."""
    return 5 - sum(1 for cut in cuts if days > cut)
