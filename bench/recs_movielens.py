"""Reproduce LightFM's published MovieLens 100k WARP figures with the library we ship.

LightFM's "Learning-to-rank using the WARP loss" example trains ``LightFM(learning_rate=0.05,
loss="warp")`` for 10 epochs on ``ua.base`` and reports test precision@10 about 0.11 and test
AUC about 0.90 (``lightfm.evaluation`` called *without* ``train_interactions``, so movies the
user already rated in training compete with the test movies). We report that protocol (the
reproduction) and the stricter one with training items excluded. We read the same
GroupLens split from ``../shared/datasets/movielens_100k/`` (never downloaded, never copied)
and also score the model with our own ``ranking_metrics`` as a cross-check of our evaluation.

Run: ``.venv/bin/python -m bench.recs_movielens [--epochs 10] [--threads 2]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from bench._recs_common import DATASETS, machine, write_subsection
from saleor_crm_plugin.core.tables import format_table
from saleor_crm_plugin.recommendations import evaluation

PUBLISHED = {"precision@10": 0.11, "auc": 0.90}


def read_split(path: Path, shape: tuple[int, int]) -> sp.coo_matrix:
    data = np.loadtxt(path, dtype=np.int64)
    users, items, ratings = data[:, 0] - 1, data[:, 1] - 1, data[:, 2]
    return sp.coo_matrix((ratings.astype(np.float32), (users, items)), shape=shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DATASETS / "movielens_100k" / "ml-100k")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=5, help="Repeat with this many seeds")
    args = parser.parse_args()

    from lightfm import LightFM
    from lightfm.evaluation import auc_score, precision_at_k

    shape = (943, 1682)
    train = read_split(args.data / "ua.base", shape)
    test = read_split(args.data / "ua.test", shape)
    train_csr = train.tocsr()
    rows = []
    figures: dict[str, list[float]] = {
        k: []
        for k in (
            "precision@10",
            "auc",
            "excl_precision@10",
            "excl_auc",
            "ours_precision@10",
            "ours_ndcg@10",
            "epoch_s",
        )
    }
    for seed in range(args.seeds):
        model = LightFM(learning_rate=0.05, loss="warp", random_state=np.random.RandomState(seed))
        started = time.perf_counter()
        model.fit_partial(train, epochs=args.epochs, num_threads=args.threads)
        epoch_s = (time.perf_counter() - started) / args.epochs
        threads = args.threads
        precision = float(precision_at_k(model, test, k=10, num_threads=threads).mean())
        auc = float(auc_score(model, test, num_threads=threads).mean())
        excl_precision = float(
            precision_at_k(model, test, train_interactions=train, k=10, num_threads=threads).mean()
        )
        excl_auc = float(
            auc_score(model, test, train_interactions=train, num_threads=threads).mean()
        )
        # Our evaluation on the same model: same exclusion of training items, same test users.
        test_csr = test.tocsr()
        users = np.nonzero(np.diff(test_csr.indptr))[0]
        truth = [test_csr.indices[test_csr.indptr[u] : test_csr.indptr[u + 1]] for u in users]
        biases, factors = model.get_item_representations()
        _, user_factors = model.get_user_representations()
        raw = evaluation.factor_scorer(user_factors, factors, biases)

        def scorer(batch: np.ndarray, raw=raw) -> np.ndarray:
            scores = raw(batch)
            seen = train_csr[batch]
            scores[seen.nonzero()] = -np.inf
            return scores

        ours = evaluation.ranking_metrics(scorer, users, truth, shape[1], k=10)
        for key, value in (
            ("precision@10", precision),
            ("auc", auc),
            ("excl_precision@10", excl_precision),
            ("excl_auc", excl_auc),
            ("ours_precision@10", ours["precision"]),
            ("ours_ndcg@10", ours["ndcg"]),
            ("epoch_s", epoch_s),
        ):
            figures[key].append(value)
        rows.append(
            [
                seed,
                f"{precision:.4f}",
                f"{auc:.4f}",
                f"{excl_precision:.4f}",
                f"{excl_auc:.4f}",
                f"{ours['precision']:.4f}",
                f"{ours['ndcg']:.4f}",
                f"{epoch_s * 1000:.1f}",
            ]
        )
    headers = [
        "seed",
        "precision@10",
        "AUC",
        "excl. precision@10",
        "excl. AUC",
        "ours excl. precision@10",
        "ours excl. NDCG@10",
        "ms/epoch",
    ]
    table = format_table(headers, rows)
    mean = {k: float(np.mean(v)) for k, v in figures.items()}
    summary = (
        f"mean over {args.seeds} seeds: precision@10 {mean['precision@10']:.3f} "
        f"(published ~{PUBLISHED['precision@10']}), AUC {mean['auc']:.3f} "
        f"(published ~{PUBLISHED['auc']}), LightFM's protocol (training items not excluded). "
        f"With training items excluded: precision@10 {mean['excl_precision@10']:.3f}, AUC "
        f"{mean['excl_auc']:.3f}; our own ranking_metrics on the same models gives precision@10 "
        f"{mean['ours_precision@10']:.3f} (must equal LightFM's excluded figure) and NDCG@10 "
        f"{mean['ours_ndcg@10']:.3f}; {mean['epoch_s'] * 1000:.0f} ms per epoch"
    )
    print(table)
    print(summary)
    write_subsection(
        "Recommendations",
        "MovieLens 100k (LightFM WARP reproduction)",
        "`python -m bench.recs_movielens`: ua.base/ua.test, `LightFM(learning_rate=0.05, "
        f"loss='warp')`, {args.epochs} epochs, {args.threads} threads ({machine()}).\n\n"
        f"```\n{table}```\n\n{summary}.\n",
    )


if __name__ == "__main__":
    main()
