"""docs/safety.md names only tests that exist: every ``tests/x.py::test_name`` in it is a test function in that file."""

import ast
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_test_named_in_the_safety_file_exists():
    with open(os.path.join(ROOT, "docs", "safety.md")) as f:
        text = f.read()
    named = set(re.findall(r"(tests/[\w/]+\.py)::(test_\w+)", text))
    assert len(named) >= 20
    missing = []
    for path, name in sorted(named):
        full = os.path.join(ROOT, path)
        if not os.path.isfile(full):
            missing.append("{} (no such file)".format(path))
            continue
        with open(full) as f:
            tree = ast.parse(f.read())
        if name not in {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}:
            missing.append("{}::{}".format(path, name))
    assert not missing, "docs/safety.md names tests that do not exist: " + ", ".join(missing)
