"""The project's modules import each other without cycles (function-level imports count; imports under
``if TYPE_CHECKING:`` do not), so each module can be read and tested after the ones it uses."""

from __future__ import annotations

from tests.conftest import REPO_ROOT
from tools.code_metrics import find_cycle, import_graph


def test_no_import_cycles():
    graph = import_graph(REPO_ROOT)
    assert find_cycle(graph) is None, " → ".join(find_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
