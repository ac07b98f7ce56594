"""The offline metrics on cases small enough to work out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from saleor_crm_plugin.recommendations import evaluation


def fixed(scores):
    scores = np.asarray(scores, dtype=np.float32)
    return lambda users: scores[users]


def test_metrics_at_k_by_hand():
    # user 0 ranks items 3,2,1,0; truth {3, 0}: hits at ranks 1 and 4
    scorer = fixed([[0.1, 0.2, 0.3, 0.9, -1, -1]])

    result = evaluation.ranking_metrics(scorer, np.array([0]), [np.array([3, 0])], 6, k=4)

    assert result["precision"] == pytest.approx(2 / 4)
    assert result["recall"] == pytest.approx(1.0)
    dcg = 1 / np.log2(2) + 1 / np.log2(5)
    idcg = 1 / np.log2(2) + 1 / np.log2(3)
    assert result["ndcg"] == pytest.approx(dcg / idcg)
    assert result["map"] == pytest.approx((1 / 1 + 2 / 4) / 2)
    assert result["coverage"] == pytest.approx(4 / 6)


def test_metrics_average_over_users_and_count_misses():
    scorer = fixed([[1, 0, 0], [1, 0, 0]])

    result = evaluation.ranking_metrics(
        scorer, np.array([0, 1]), [np.array([0]), np.array([2])], 3, k=1
    )

    assert result["precision"] == pytest.approx(0.5)
    assert result["ndcg"] == pytest.approx(0.5)
    assert result["coverage"] == pytest.approx(1 / 3)


def test_top_k_breaks_ties_by_lower_index():
    ranked = evaluation.top_k(np.array([[0.5, 0.9, 0.5, 0.1]]), 3)

    assert ranked.tolist() == [[1, 0, 2]]


def test_buy_again_ranks_own_history_then_popular():
    train = sp.csr_matrix(np.array([[0, 0, 2.0, 0], [5.0, 1.0, 0, 0]], dtype=np.float32))

    scores = evaluation.buy_again_scorer(train)(np.array([0]))

    assert evaluation.top_k(scores, 4).tolist() == [[2, 0, 1, 3]]


def test_no_test_users_gives_zeros():
    result = evaluation.ranking_metrics(fixed([[1.0]]), np.array([], dtype=int), [], 1)

    assert result == dict.fromkeys(evaluation.METRICS, 0.0)
