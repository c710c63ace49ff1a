"""The augmenting-path step of the draw's inspector assignment (``core/draw.py``,
:func:`~firewatch.core.draw.assign_inspectors`): when a unit cannot get another inspector
within the load bound directly, move assignments along a shortest path until an inspector
with room is reached. Pure bipartite-matching bookkeeping on plain dicts; its order of
search is part of the published draw procedure (docs/supervision.md), so a change here
changes draws.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence


def augment(
    start: str,
    ranked: Sequence[str],
    processed: Sequence[str],
    assigned: dict[str, list[str]],
    holders: dict[str, list[str]],
    eligible: Callable[[str, str], bool],
    bound: int,
) -> bool:
    """One more inspector for ``start`` by moving assignments along a shortest path
    ``start -> j1 -> u1 -> j2 -> ... -> jt`` (``u_i`` holds ``j_i`` and takes ``j_{i+1}``
    instead; ``jt`` has room). Breadth-first: units in the queue in discovery order,
    inspectors tried in the ranked order, a full inspector's units in processing order.
    True when done; False when no such path exists."""
    parent_of_inspector: dict[str, str] = {}  # j -> the unit that reaches it
    parent_of_unit: dict[str, str] = {}  # u -> the inspector it gives up
    queue = deque([start])
    seen_units = {start}
    while queue:
        x = queue.popleft()
        for j in ranked:
            if j in parent_of_inspector or not eligible(x, j):
                continue
            parent_of_inspector[j] = x
            if len(holders[j]) < bound:
                flip(j, parent_of_inspector, parent_of_unit, assigned, holders)
                return True
            for y in processed:
                if y not in seen_units and j in assigned[y]:
                    seen_units.add(y)
                    parent_of_unit[y] = j
                    queue.append(y)
    return False


def flip(
    end: str,
    parent_of_inspector: dict[str, str],
    parent_of_unit: dict[str, str],
    assigned: dict[str, list[str]],
    holders: dict[str, list[str]],
) -> None:
    j = end
    while True:
        x = parent_of_inspector[j]
        given_up = parent_of_unit.get(x)
        if given_up is None:  # the start: it simply gains j
            assigned[x].append(j)
            holders[j].append(x)
            return
        # x hands its place with `given_up` to the previous unit, and takes j instead
        slot = assigned[x].index(given_up)
        assigned[x][slot] = j
        holders[j].append(x)
        holders[given_up].remove(x)
        j = given_up
