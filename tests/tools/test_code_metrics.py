"""tools/code_metrics.py on a tiny tree built to miss every bar."""

from __future__ import annotations

import json
import textwrap

from tools.code_metrics import BARS, main, measure


def _write(root, name, text):
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


def _tree(root):
    _write(root, "pkg/__init__.py", "from pkg import a\n")
    _write(root, "pkg/a.py", '''
        """Module docstring
        on two lines."""

        from pkg.b import helper


        class Speaker:
            pass


        def pick(kind):
            return kind == "istft"
    ''')
    _write(root, "pkg/b.py", '''
        from typing import TYPE_CHECKING

        if TYPE_CHECKING:
            from pkg.c import Unused


        def helper():
            from pkg.a import Speaker  # a function-level import still closes the cycle
            return isinstance(Speaker(), (int, Synthesizer))


        class Speaker:
            """One line."""
    ''')
    _write(root, "pkg/c.py", "from pkg.b import helper\n")
    _write(root, "pkg/registry.py", 'def load(kind):\n    return kind in ("tacotron", "duration")\n')
    _write(root, "tests/test_a.py", 'class Speaker:\n    """Ignored."""\n    x = "wavernn" == 1\n')


def test_each_measure_on_a_tree_that_misses_the_bars(tmp_path):
    _tree(tmp_path)
    metrics = measure(tmp_path)
    assert metrics.import_cycles == [["pkg.a", "pkg.b"]]  # pkg.c only imports, TYPE_CHECKING does not count
    assert metrics.kind_checks == ["pkg/a.py:12", "pkg/b.py:9"]  # registry.py and tests/ are exempt
    assert metrics.docstring_lines == 3
    assert metrics.total_lines == 1 + 12 + 13 + 1 + 2  # blank lines count
    assert metrics.duplicate_class_names == {"Speaker": ["pkg/a.py", "pkg/b.py"]}


def test_the_command_line_fails_the_check_and_prints_json(tmp_path, capsys):
    _tree(tmp_path)
    assert main([str(tmp_path), "--json", "--check"]) == 1
    printed = json.loads(capsys.readouterr().out)
    assert printed["kind_checks"] == ["pkg/a.py:12", "pkg/b.py:9"]
    assert set(BARS) <= {"import_cycles", "kind_checks", "docstring_share", "duplicate_class_names"}


def test_a_clean_tree_passes(tmp_path, capsys):
    _write(tmp_path, "m.py", '"""Doc."""\n\n\n\n\n\n\n\nx = 1\n')
    assert main([str(tmp_path), "--check"]) == 0
    assert "import cycles: 0" in capsys.readouterr().out
