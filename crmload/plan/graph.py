"""The dependency graph of a plan: loads are nodes, lookups are edges from child to parent.

Pure functions on load numbers; no files, no CRM. ``order(n, edges)`` finds the strongly connected
components (Tarjan, iterative) and puts them in topological tiers, parents first: every load of tier k
points only at loads of tiers < k, or at loads of its own component. Within a component loads run in plan
order; an edge from a load to a later load of its component (or any edge of a cycle between loads) cannot
be satisfied by order, so ``deferred`` names it: its lookup is left empty on create and set by an update
pass. A self-edge (account -> parent account) is decided by the data (``plan/data.py``), not here.

Example::

    >>> e = [Edge(child=1, parent=0, column="account_code", attribute="parentcustomerid", entity="account")]
    >>> order(2, e)
    [[[0]], [[1]]]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Edge", "deferred", "order"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Edge:
    """A lookup of load ``child`` (its source ``column`` sets ``attribute``) to records of load ``parent``."""

    child: int
    parent: int
    column: str
    attribute: str
    entity: str

    @property
    def is_self(self) -> bool:
        """True for a lookup into the load's own file (account -> parent account)."""
        return self.child == self.parent


def components(n: int, edges: Sequence[Edge]) -> list[list[int]]:  # noqa: PLR0912 - Tarjan, iterative
    """Strongly connected components of loads ``0..n-1``, each sorted, parents' components first (Tarjan)."""
    succ: list[list[int]] = [[] for _ in range(n)]
    for e in edges:
        succ[e.child].append(e.parent)
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    out: list[list[int]] = []
    counter = 0
    for root in range(n):
        if root in index:
            continue
        work: list[tuple[int, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            recurse = False
            for j in range(i, len(succ[node])):
                nxt = succ[node][j]
                if nxt not in index:
                    work.append((node, j + 1))
                    work.append((nxt, 0))
                    recurse = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if recurse:
                continue
            if low[node] == index[node]:
                comp: list[int] = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                out.append(sorted(comp))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return out


def order(n: int, edges: Sequence[Edge]) -> list[list[list[int]]]:
    """Tiers of components, parents first; within a tier, components in plan order (independent)."""
    comps = components(n, edges)
    comp_of = {load: c for c, members in enumerate(comps) for load in members}
    parents: list[set[int]] = [set() for _ in comps]
    for e in edges:
        a, b = comp_of[e.child], comp_of[e.parent]
        if a != b:
            parents[a].add(b)
    tier: dict[int, int] = {}
    # Tarjan emits a component after every component it reaches: parents come out first.
    for c in range(len(comps)):
        tier[c] = 1 + max((tier[p] for p in parents[c]), default=-1)
    out: list[list[list[int]]] = [[] for _ in range(1 + max(tier.values(), default=-1))]
    for c in sorted(range(len(comps)), key=lambda c: comps[c][0]):
        out[tier[c]].append(comps[c])
    return out


def deferred(component: Sequence[int], edges: Sequence[Edge]) -> list[Edge]:
    """Edges inside ``component`` between two loads that plan order cannot satisfy (child before parent)."""
    members = set(component)
    return [
        e
        for e in edges
        if e.child in members and e.parent in members and not e.is_self and e.parent > e.child
    ]
