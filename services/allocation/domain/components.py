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
    if count == 0:
        return []
    pairs = np.asarray(links, dtype=np.int64).reshape(-1, 2)
    if pairs.size and (pairs.min() < 0 or pairs.max() >= count):
        raise IndexError(f"a link names a node outside 0..{count - 1}")
    graph = coo_array(
        (np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(count, count)
    )
    _, labels = connected_components(graph, directed=False)
    return [int(label) for label in labels]
