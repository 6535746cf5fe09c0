"""Which nodes of a graph hang together: connected components from scipy's sparse graph tools."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components


def component_labels(count: int, links: Sequence[tuple[int, int]]) -> list[int]:
    """The component label of each of the nodes 0..`count`-1 joined by the undirected `links`.

    Two nodes get the same label exactly when a path of links joins them; labels are small
    integers, numbered in the order of each component's lowest node. Raises IndexError for a
    link to a node outside the range.
    """
    pairs = np.asarray(links, dtype=np.int64).reshape(-1, 2)
    return component_labels_of(count, pairs[:, 0], pairs[:, 1])


def component_labels_of(
    count: int, tails: Sequence[int] | np.ndarray, heads: Sequence[int] | np.ndarray
) -> list[int]:
    """`component_labels` of the links tails[i] - heads[i], given as two flat sequences (a
    large graph's links are cheaper to gather so than as pairs)."""
    if count == 0:
        return []
    tail = np.asarray(tails, dtype=np.int64)
    head = np.asarray(heads, dtype=np.int64)
    if tail.size and (min(tail.min(), head.min()) < 0 or max(tail.max(), head.max()) >= count):
        raise IndexError(f"a link names a node outside 0..{count - 1}")
    graph = coo_array((np.ones(len(tail), dtype=np.int8), (tail, head)), shape=(count, count))
    _, labels = connected_components(graph, directed=False)
    found: list[int] = labels.tolist()
    return found
