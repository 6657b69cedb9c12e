"""Layers point down only (in the manner of MNE's test_import_nesting), with no import cycle.

decoder -> firmware_bridge -> deploy runtime -> training -> calibration -> application: a module may import its own
layer and the layers before it, never one after it, lazy (in-function) imports included. The application is
``cli.py``, ``demo.py``, ``bench.py`` (with ``bench_latency.py``) and the scripts in
``experiments/``.
"""

import ast
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYERS = ("decoder", "firmware_bridge", "runtime", "training", "calibration", "application")
PACKAGES = ("decoder", "firmware_bridge", "deploy", "training", "calibration")


def layer_of(module):
    """Layer index of a ``neurohand.*`` module (None for the bare namespace package)."""
    if module == "neurohand":
        return None
    if module.startswith("experiments") or module.count(".") == 1 and module.split(".")[1] not in PACKAGES:
        return LAYERS.index("application")  # experiments/ and the package's top-level modules
    pkg = module.split(".")[1]
    return LAYERS.index("runtime" if pkg == "deploy" else pkg)


def _modules():
    """(module name, path) of every module of the package, and of the experiments' scripts."""
    out = [("neurohand", os.path.join(ROOT, "__init__.py"))]
    out += [("neurohand." + f[:-3], os.path.join(ROOT, f)) for f in sorted(os.listdir(ROOT))
            if f.endswith(".py") and f != "__init__.py"]
    for pkg in PACKAGES + ("experiments",):
        for dirpath, _, files in os.walk(os.path.join(ROOT, pkg)):
            for f in sorted(files):
                if f.endswith(".py"):
                    rel = os.path.relpath(os.path.join(dirpath, f), ROOT)[:-3].replace(os.sep, ".")
                    rel = rel[: -len(".__init__")] if rel.endswith(".__init__") else rel
                    out.append((rel if pkg == "experiments" else "neurohand." + rel, os.path.join(dirpath, f)))
    return out


def _imports(module, path):
    """(imported neurohand module or name, line, at module level) for every import in the file."""
    tree = ast.parse(open(path).read(), path)
    is_pkg = path.endswith("__init__.py")
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names = [mod + "." + a.name for a in node.names] if mod.startswith("neurohand") else [mod]
        else:
            continue
        for n in names:
            if n.startswith("neurohand"):
                yield n, node.lineno, id(node) in top


def _resolve(name, known):
    """The module an imported dotted name refers to: itself, or its parent for a name imported from a module."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name


def test_no_module_imports_a_layer_above_its_own():
    modules = dict(_modules())
    bad = []
    for module, path in modules.items():
        mine = layer_of(module)
        for name, line, _ in _imports(module, path):
            target = _resolve(name, modules) or name
            theirs = layer_of(target)
            if mine is not None and theirs is not None and theirs > mine:
                bad.append("{}:{} ({}) imports {} ({})".format(os.path.relpath(path, ROOT), line, LAYERS[mine],
                                                               target, LAYERS[theirs]))
    assert not bad, "upward imports:\n" + "\n".join(bad)


def import_graph():
    """Module -> the package modules it imports, lazy (in-function) imports included."""
    modules = dict(_modules())
    graph = {m: set() for m in modules}
    for module, path in modules.items():
        for name, _, _ in _imports(module, path):
            target = _resolve(name, modules)
            if target and target != module and not module.startswith(target + "."):
                graph[module].add(target)  # a package's own __init__ is not a cycle with its submodules
    return graph


def cycles_in(graph):
    """Every cycle a depth-first walk of ``graph`` closes, as 'a -> b -> a'."""
    cycles, state = [], {}

    def visit(m, stack):
        state[m] = "open"
        for t in sorted(graph.get(m, ())):
            if state.get(t) == "open":
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t, stack + [t])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    return cycles


def test_no_import_cycle_between_modules():
    """Not even through a lazy import: each module can be understood (and imported) after those it imports."""
    cycles = cycles_in(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_cycle_check_sees_a_lazy_cycle(tmp_path):
    """The check can fail: a lazy import back into a module that imports this one is a cycle."""
    f = tmp_path / "bundle.py"
    f.write_text("def decoder():\n    from neurohand.decoder.stream import StreamDecoder\n")
    graph = import_graph()
    graph["neurohand.decoder.bundle"] |= {_resolve(n, graph) for n, _, _ in _imports("neurohand.decoder.bundle",
                                                                                     str(f))}
    assert any("neurohand.decoder.bundle" in c and "neurohand.decoder.stream" in c for c in cycles_in(graph))


def test_no_private_name_is_imported_from_another_module():
    modules = dict(_modules())
    bad = []
    for module, path in modules.items():
        for name, line, _ in _imports(module, path):
            target = _resolve(name, modules)
            leaf = name.rpartition(".")[2]
            if target != name and leaf.startswith("_") and not leaf.startswith("__"):
                bad.append("{}:{} imports {}".format(os.path.relpath(path, ROOT), line, name))
    assert not bad, "private names used across modules:\n" + "\n".join(bad)


def test_the_layer_check_sees_an_upward_import(tmp_path):
    """The check can fail: a decoder module importing training is reported, lazy or not."""
    f = tmp_path / "bad.py"
    f.write_text("import numpy\n\ndef f():\n    from neurohand.training.metrics import r2_per_finger\n")
    found = list(_imports("neurohand.decoder.bad", str(f)))
    assert found == [("neurohand.training.metrics.r2_per_finger", 4, False)]
    assert layer_of(_resolve(found[0][0], dict(_modules()))) > layer_of("neurohand.decoder.bad")


@pytest.mark.parametrize("layer", ["decoder", "firmware_bridge", "runtime", "training"])
def test_importing_a_layer_loads_nothing_above_it(layer):
    """At run time too: importing every module of a layer (and those below) pulls in no module of a higher layer."""
    mine = LAYERS.index(layer)
    mods = [m for m, _ in _modules() if m != "neurohand" and layer_of(m) <= mine
            and not m.startswith("experiments") and m != "neurohand.__main__"]
    code = ("import sys\n" + "".join("import {}\n".format(m) for m in mods)
            + "print('\\n'.join(m for m in sys.modules if m.startswith('neurohand.')))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=str(os.path.dirname(ROOT)), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    loaded = [m for m in r.stdout.split() if layer_of(m) is not None and layer_of(m) > mine]
    assert not loaded, "importing the {} layer loaded {}".format(layer, loaded)


def test_no_module_is_over_500_lines():
    """Modules are small enough to read whole; a bigger one is split along its seams."""
    long = ["{} ({} lines)".format(os.path.relpath(path, ROOT), n) for _, path in _modules()
            for n in [sum(1 for _ in open(path))] if n > 500]
    assert not long, "over 500 lines: " + ", ".join(long)
