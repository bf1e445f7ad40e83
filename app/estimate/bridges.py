"""Bridges of a graph of "duplicate" edges: the judgements a cluster hangs on.

Removing a bridge splits its cluster in two; the pairs between the halves (a * b of them) are
held together by that one judgement alone. The estimator needs to know which sampled pairs the
others settle (not the bridges); the second look needs a * b, what one slip there would cost.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["bridge_cuts"]


def bridge_cuts(u: NDArray[np.int64], v: NDArray[np.int64]) -> NDArray[np.int64]:
    """For each edge (u[k], v[k]) of a simple graph: the number of nodes its removal cuts off
    from the rest of its component (the side away from the DFS root), 0 where it is no bridge.
    The other side has the component's size minus that. Tarjan, iterative."""
    m = u.size
    out = np.zeros(m, dtype=np.int64)
    if m == 0:
        return out
    nodes, inv = np.unique(np.concatenate([u, v]), return_inverse=True)
    a, b = inv[:m], inv[m:]
    adj: list[list[tuple[int, int]]] = [[] for _ in range(nodes.size)]
    for k, (x, y) in enumerate(zip(a.tolist(), b.tolist(), strict=True)):
        adj[x].append((y, k))
        adj[y].append((x, k))
    disc = [-1] * nodes.size
    low = [0] * nodes.size
    below = [1] * nodes.size  # nodes in each node's DFS subtree, itself included
    clock = 0
    for root in range(nodes.size):
        if disc[root] >= 0:
            continue
        disc[root] = low[root] = clock
        clock += 1
        stack: list[tuple[int, int, int]] = [(root, -1, 0)]  # (node, edge in, next neighbour)
        while stack:
            node, via, nxt = stack[-1]
            if nxt < len(adj[node]):
                stack[-1] = (node, via, nxt + 1)
                other, edge = adj[node][nxt]
                if edge == via:
                    continue
                if disc[other] < 0:
                    disc[other] = low[other] = clock
                    clock += 1
                    stack.append((other, edge, 0))
                else:
                    low[node] = min(low[node], disc[other])
            else:
                stack.pop()
                if stack:
                    parent = stack[-1][0]
                    low[parent] = min(low[parent], low[node])
                    below[parent] += below[node]
                    if low[node] > disc[parent]:
                        out[via] = below[node]
    return out
