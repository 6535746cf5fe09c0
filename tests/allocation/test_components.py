"""Connected components: what joins two nodes into one part (the solver's parts, the conflicts)."""

from __future__ import annotations

import pytest

from services.allocation.domain.components import component_labels

pytestmark = pytest.mark.fast


def test_nodes_linked_directly_or_through_others_share_a_label() -> None:
    labels = component_labels(6, [(0, 3), (3, 5), (1, 1), (2, 4)])
    assert labels[0] == labels[3] == labels[5]
    assert labels[2] == labels[4]
    assert len({labels[0], labels[1], labels[2]}) == 3


def test_no_links_leave_each_node_alone() -> None:
    assert component_labels(0, []) == []
    assert component_labels(3, []) == [0, 1, 2]


def test_a_link_outside_the_nodes_is_refused() -> None:
    with pytest.raises(IndexError, match="outside"):
        component_labels(2, [(0, 2)])
