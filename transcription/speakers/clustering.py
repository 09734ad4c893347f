"""Speaker labels revised after the session, with every phrase known at once: agglomerative clustering
(scipy's average linkage on cosine distances) of the phrase embeddings, the number of speakers chosen
by the data (the tree is cut where clusters stop being alike: RECLUSTER_SAME). Phrases too short to
embed keep their live label's cluster. New clusters are named after the live label they hold most of,
so the names the owner gave stay on the same people."""
from __future__ import annotations

import collections

import numpy as np

RECLUSTER_SAME = 0.4  # average cosine similarity at which two clusters are one speaker (bench/speaker_eval.py)


def recluster(embeddings: list[np.ndarray | None], live: list[str], durations: list[float],
              prefer=frozenset()) -> list[str]:
    """A label per phrase. `embeddings[i]` None: the phrase keeps the cluster its live label mostly got.
    A cluster holding a label in `prefer` (the owner named it) takes that label before any other."""
    from scipy.cluster.hierarchy import fcluster, linkage

    known = [i for i, e in enumerate(embeddings) if e is not None]
    if len(known) < 2:
        return list(live)
    matrix = np.stack([embeddings[i] / (np.linalg.norm(embeddings[i]) + 1e-9) for i in known]).astype(np.float64)
    tree = linkage(matrix, method="average", metric="cosine")
    clusters = fcluster(tree, t=1.0 - RECLUSTER_SAME, criterion="distance")
    cluster_of = {i: int(c) for i, c in zip(known, clusters)}
    # Each cluster takes the live label it holds the most speech of, biggest clusters first; the rest
    # get labels no live speaker had.
    held = collections.defaultdict(collections.Counter)
    for i, c in cluster_of.items():
        held[c][live[i]] += durations[i]
    names, taken = {}, set()
    for c in sorted(held, key=lambda c: -sum(held[c].values())):
        for label, _ in sorted(held[c].most_common(), key=lambda item: item[0] not in prefer):
            if label and label not in taken:
                names[c] = label
                taken.add(label)
                break
    fresh = (f"S{n}" for n in range(1, 10_000) if f"S{n}" not in taken and f"S{n}" not in live)
    for c in held:
        names.setdefault(c, next(fresh))
    # A live label's short phrases follow where most of its embedded speech went.
    went = collections.defaultdict(collections.Counter)
    for i, c in cluster_of.items():
        went[live[i]][names[c]] += durations[i]
    return [names[cluster_of[i]] if i in cluster_of
            else (went[live[i]].most_common(1)[0][0] if went[live[i]] else live[i]) for i in range(len(live))]
