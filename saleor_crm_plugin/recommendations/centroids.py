"""Country centroids: what the model knows about the customers of a country, as one vector.

A signed-in customer without purchases gets no row in a model without user features; the
mean ``user_factors`` of the trained customers of their country is a cheap stand-in that
needs no change to the fit (so existing customers' ranking is untouched). Computed once per
training run from the countries the fit saw and stored with the artefact (float32), so a web
worker loads it with the rest and needs no query; the evaluation (``services.
evaluate_cold_start``) and serving use this one function, so what was measured is served.

No user bias: it is a constant per customer, which the per-customer standardisation of the
served score removes (``scoring.hybrid_scores``); a country's score is ``item_factors @
centroid + item_biases``, as for any customer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class CountryCentroids:
    countries: list[str]  # sorted country codes
    customers: list[int]  # trained customers each mean is over
    factors: np.ndarray  # float32, len(countries) x components

    @classmethod
    def empty(cls, dim: int) -> CountryCentroids:
        return cls([], [], np.zeros((0, dim), dtype=np.float32))


def country_centroids(
    user_factors: np.ndarray, countries: Sequence[str], users: np.ndarray | None = None
) -> CountryCentroids:
    """Mean user vector per country over ``users`` (rows of ``user_factors``; all rows when
    None). ``countries[u]`` is customer row ``u``'s country code, "" when unknown (skipped);
    an empty ``countries`` (no country data at all) gives no centroid."""
    dim = user_factors.shape[1]
    if not len(countries):
        return CountryCentroids.empty(dim)
    rows = np.arange(len(countries)) if users is None else np.asarray(users)
    # Codes -> small ints with a dict (a numpy sort of 50k strings costs 10x more).
    ids: dict[str, int] = {}
    of_row = np.fromiter(
        (ids.setdefault(c, len(ids)) if (c := countries[u]) else -1 for u in rows),
        dtype=np.int64,
        count=len(rows),
    )
    known = of_row >= 0
    if not known.any():
        return CountryCentroids.empty(dim)
    rows, of_row = rows[known], of_row[known]
    counts = np.bincount(of_row, minlength=len(ids))
    # Sums as one sparse (countries x customers) one-hot product, in float64.
    one_hot = sp.csr_matrix(
        (np.ones(len(rows)), (of_row, np.arange(len(rows)))), shape=(len(ids), len(rows))
    )
    means = (one_hot @ user_factors[rows].astype(np.float64)) / counts[:, None]
    names = sorted(ids)
    order = [ids[n] for n in names]
    return CountryCentroids(
        countries=names,
        customers=[int(counts[i]) for i in order],
        factors=np.ascontiguousarray(means[order], dtype=np.float32),
    )
