"""Quintile scoring: equal values always share a score, R is inverted, cut points explain it."""

from decimal import Decimal

from saleor_crm_plugin.rfm.scoring import ascending_score, cut_points, recency_score


def test_cut_points_follow_percentile_disc():
    # percentile_disc(p) = the first value whose cumulative position reaches p
    assert cut_points(list(range(1, 11))) == [2, 4, 6, 8]
    assert cut_points([7]) == [7, 7, 7, 7]
    assert cut_points([]) == []


def test_equal_values_get_equal_scores_where_ntile_would_split_them():
    # 10 customers, 6 of them with one order: NTILE(5) would put those six in buckets 1, 2
    # and 3. With cut points they all score 1.
    frequencies = [1, 1, 1, 1, 1, 1, 2, 3, 5, 8]
    cuts = cut_points(frequencies)
    assert cuts == [1, 1, 1, 3]
    scores = [ascending_score(f, cuts) for f in frequencies]
    assert scores == [1, 1, 1, 1, 1, 1, 4, 4, 5, 5]


def test_recency_is_inverted():
    days = [0, 3, 10, 30, 90, 180, 365, 400, 500, 700]
    cuts = cut_points(days)
    assert [recency_score(d, cuts) for d in days] == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]


def test_monetary_scores_on_decimals():
    values = [Decimal(v) for v in ("10.000", "10.000", "20.500", "99.990", "1000.000")]
    cuts = cut_points(values)
    assert cuts == [Decimal("10.000"), Decimal("10.000"), Decimal("20.500"), Decimal("99.990")]
    assert [ascending_score(v, cuts) for v in values] == [1, 1, 3, 4, 5]
