"""Every code example in README.md and docs/*.md runs, and the README keeps its shape.

A fenced block tagged ``python`` runs as a script; one tagged ``sh`` (or ``bash``, ``shell``, ``console``) runs
command by command, and may hold only ``neurohand ...`` commands. A block that cannot run here (it needs a Jetson,
a patient's devices, the network) is preceded by ``<!-- not run: REASON -->``. Blocks without one of these tags
(file layouts, diagrams, TOML) are not examples. The blocks of one document run in order in one temporary folder, so
later ones use what earlier ones wrote; the folder links the repository's ``deploy/`` (the Jetson guide runs from a
checkout, e.g. ``deploy/profiles/fps.toml``).
"""

import glob
import os
import re
import shlex
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md"] + sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))
SHELL = ("sh", "bash", "shell", "console")
CODE = SHELL + ("python",)
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(\S.*?)\s*-->$")
FENCE = re.compile(r"^```\s*([\w+-]*)\s*$")


def blocks(doc):
    """``(line, lang, text, not_run_reason)`` for every fenced block of ``doc``."""
    lines = open(os.path.join(ROOT, doc), encoding="utf-8").read().splitlines()
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(1).lower()
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        assert j < len(lines), "{}:{}: unclosed code block".format(doc, start + 1)
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        marker = NOT_RUN.match(lines[k].strip()) if k >= 0 else None
        out.append((start + 1, lang, "\n".join(lines[start + 1:j]) + "\n", marker.group(1) if marker else None))
        i = j + 1
    return out


def commands(text):
    """The commands of a shell block: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n", " ", text)
    return [c for c in (shlex.split(line, comments=True) for line in joined.splitlines()) if c]


def runnable(doc):
    return [(line, lang, text) for line, lang, text, reason in blocks(doc) if lang in CODE and reason is None]


def neurohand_exe():
    exe = os.path.join(os.path.dirname(sys.executable), "neurohand")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "neurohand"]


# ------------------------------------------------------------------------------------------------ fast checks
def test_readme_starts_with_the_two_commands_and_stays_short():
    lines = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read().splitlines()
    assert len(lines) <= 300, "README.md has {} lines; move detail into docs/".format(len(lines))
    body = [ln for ln in lines[1:] if ln.strip() and not ln.strip().startswith("<!--")]
    assert lines[0].startswith("# ")
    assert FENCE.match(body[0]) and body[3].strip() == "```", body[:4]
    assert [ln.split("#")[0].strip() for ln in body[1:3]] == ["make demo", "make test"]


@pytest.mark.parametrize("doc", DOCS)
def test_every_code_block_runs_or_says_why_not(doc):
    for line, lang, text, reason in blocks(doc):
        if lang not in CODE or reason is not None:
            continue
        if lang in SHELL:
            for cmd in commands(text):
                assert cmd[0] == "neurohand", (
                    "{}:{}: a runnable shell block holds only neurohand commands, found {!r}; put "
                    "'<!-- not run: REASON -->' before the block if it cannot run here".format(doc, line, cmd[0]))


@pytest.mark.parametrize("doc", DOCS)
def test_links_and_commands_named_in_the_docs_exist(doc):
    from neurohand.cli import build_parser

    text = open(os.path.join(ROOT, doc), encoding="utf-8").read()
    base = os.path.dirname(os.path.join(ROOT, doc))
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if "://" not in target:
            assert os.path.exists(os.path.join(base, target)), "{}: broken link {}".format(doc, target)
    for script in re.findall(r"python experiments/(\w+)\.py", text):
        assert os.path.isfile(os.path.join(ROOT, "experiments", script + ".py")), "{}: no experiments/{}.py".format(
            doc, script)
    subcommands = set(build_parser()._subparsers._group_actions[0].choices)
    for sub in re.findall(r"`neurohand ([a-z][a-z-]+)", text):
        assert sub in subcommands, "{}: `neurohand {}` is not a command".format(doc, sub)


# ------------------------------------------------------------------------------------------------ the examples
def run_doc(doc, tmp_path):
    os.symlink(os.path.join(ROOT, "deploy"), str(tmp_path / "deploy"))
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    for n, (line, lang, text) in enumerate(runnable(doc)):
        if lang == "python":
            path = tmp_path / "example_{}.py".format(n)
            path.write_text(text)
            cmds = [[sys.executable, str(path)]]
        else:
            cmds = [neurohand_exe() + cmd[1:] for cmd in commands(text)]
        for cmd in cmds:
            r = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
            assert r.returncode == 0, "{}:{}: {} exited {}\n{}\n{}".format(
                doc, line, " ".join(cmd[:6]), r.returncode, r.stdout[-3000:], r.stderr[-3000:])


RUNNABLE = [doc for doc in DOCS if runnable(doc)]


@pytest.mark.slow
@pytest.mark.parametrize("doc", RUNNABLE)
def test_the_examples_run(doc, tmp_path):
    run_doc(doc, tmp_path)
