"""Plan ordering without files or CRM: components, tiers, deferred edges, self-reference levels, changes."""

from __future__ import annotations

from crmload.load import key_id
from crmload.plan.data import KeyIndex, SelfRows, levels
from crmload.plan.graph import Edge, components, deferred, order
from crmload.plan.state import changes


def edge(child: int, parent: int, attr: str = "x") -> Edge:
    return Edge(child=child, parent=parent, column=attr, attribute=attr, entity="e")


def test_tiers_put_parents_first_whatever_the_plan_order() -> None:
    # 0 opportunities -> 1 contacts -> 2 accounts; 0 -> 2 too
    assert order(3, [edge(0, 1), edge(1, 2), edge(0, 2)]) == [[[2]], [[1]], [[0]]]


def test_independent_loads_share_a_tier() -> None:
    assert order(3, [edge(1, 0), edge(2, 0)]) == [[[0]], [[1], [2]]]


def test_a_cycle_between_loads_is_one_component_and_its_later_edge_is_deferred() -> None:
    edges = [edge(0, 1, "primarycontactid"), edge(1, 0, "parentcustomerid"), edge(2, 0), edge(2, 1)]
    assert sorted(map(sorted, components(3, edges))) == [[0, 1], [2]]
    assert order(3, edges) == [[[0, 1]], [[2]]]
    assert [e.attribute for e in deferred([0, 1], edges)] == ["primarycontactid"]


def test_self_edges_are_not_deferred_by_the_graph() -> None:
    assert deferred([0], [edge(0, 0)]) == []
    assert order(1, [edge(0, 0)]) == [[[0]]]


def _rows(pairs: list[tuple[str, str]]) -> tuple[SelfRows, KeyIndex]:
    index, rows = KeyIndex(), SelfRows()
    for line, (code, parent) in enumerate(pairs, 2):
        ident = key_id("account", code)
        if not index.add("account", ident, 0, line):
            rows.duplicates.append(line)
        rows.rows.append((line, ident, (key_id("account", parent),) if parent else ()))
    return rows, index


def test_levels_sort_children_after_parents_listed_later() -> None:
    rows, index = _rows([("C", "B"), ("B", "A"), ("A", ""), ("D", "ZZ")])
    assert levels(rows, index.by_entity["account"], 0) == {2: 2, 3: 1, 4: 0, 5: 0}


def test_levels_are_none_for_cycles_and_self_parents() -> None:
    rows, index = _rows([("A", "B"), ("B", "A"), ("C", "")])
    assert levels(rows, index.by_entity["account"], 0) is None
    rows, index = _rows([("A", "A")])
    assert levels(rows, index.by_entity["account"], 0) is None


def test_a_repeated_key_goes_last_so_the_first_row_keeps_it() -> None:
    rows, index = _rows([("B", "A"), ("A", ""), ("B", "")])
    assert levels(rows, index.by_entity["account"], 0) == {2: 1, 3: 0, 4: 1}


def test_changes_name_what_changed() -> None:
    old = {
        "target": {"url": "http://a/", "org": "O"},
        "loads": [
            {
                "file": "/p/a.csv",
                "entity": "account",
                "map": "/p/a.toml",
                "map_sha256": "1",
                "input": {"size": 1},
            }
        ],
    }
    new = {
        "target": {"url": "http://b/", "org": "O"},
        "loads": [
            {
                "file": "/p/a.csv",
                "entity": "account",
                "map": "/p/a.toml",
                "map_sha256": "2",
                "input": {"size": 2},
            },
            {"file": "/p/c.csv", "entity": "contact"},
        ],
    }
    assert changes(old, new) == [
        "target url changed from 'http://a/' to 'http://b/'",
        "load 1 (a.csv): map file a.toml changed",
        "load 1 (a.csv): the input file changed",
        "load 2 (c.csv) was added",
    ]
    assert changes(new, new) == []
