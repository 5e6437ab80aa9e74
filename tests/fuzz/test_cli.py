"""The command line under hostile input: ``pipesl plan``, ``evaluate``, ``show`` and
``simulate`` on malformed files exit 1 with one line ``error: <file>: <field>: <rule>`` on
stderr, nothing on stdout, no traceback, within a time budget.

* ``test_every_class_*``: one malformed problem file per class of bad input (issue 8: "for
  every class above"), given to ``pipesl plan`` and ``pipesl evaluate``;
* ``test_cli_*_mutation``: the hypothesis mutations of ``mutate.py`` through ``show``,
  ``plan``, ``evaluate`` and ``simulate`` (valid mutations must run: exit 0, or exit 1 with
  the infeasibility the planner reports);
* ``test_real_program``: a sample through the installed program in a subprocess with a timeout.

Commands run in-process (``pipesl.cli.main`` with argv, SystemExit caught) for speed.
"""

from __future__ import annotations

import copy
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import CLI, SLOW, Accept, Reject, expect_cli_error, record, run_cli
from hypothesis import given
from hypothesis import strategies as st
from mutate import EXAMPLES, MUTATIONS, STEM, base_documents, baseline, dump, mutate
from test_plan_files import PLAN_CLASSES, base_case

from pipesl.cost import evaluate, plan_document
from pipesl.exceptions import PlanError
from pipesl.plan import plan_to_dict
from pipesl.problem import problem_to_dict

TINY = yaml.safe_load((EXAMPLES / "tiny-line.yaml").read_text())
TINY_PLAN = EXAMPLES / "tiny-line.plan.json"
GRAPHML = """<?xml version="1.0" encoding="utf-8"?>
{dtd}<graphml xmlns="http://graphml.graphdrawing.org/xmlns">
  <key id="f" for="node" attr.name="flops" attr.type="double"/>
  <key id="m" for="node" attr.name="memory" attr.type="double"/>
  <key id="b" for="edge" attr.name="bandwidth" attr.type="double"/>
  <graph edgedefault="undirected">
    <node id="src"><data key="f">1e9</data><data key="m">1e9</data></node>
    <node id="srv"><data key="f">4e9</data><data key="m">1e10</data></node>
    <edge source="src" target="{target}"><data key="b">1e6</data></edge>
  </graph>
</graphml>
"""
BOMB = "[" + ", ".join(["&a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"] + [
    f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]) + "]"


def tiny(*edits: tuple[str, Any]) -> dict[str, Any]:
    """tiny-line.yaml (unit strings and all) with ``("network.links.0.bandwidth", value)``
    edits; the value ``...`` deletes the key."""
    doc = copy.deepcopy(TINY)
    for dotted_path, value in edits:
        *head, last = dotted_path.split(".")
        target: Any = doc
        for part in head:
            target = target[int(part)] if part.isdigit() else target[part]
        key: Any = int(last) if last.isdigit() else last
        if value is ...:
            del target[key]
        else:
            target[key] = value
    return doc


def _with_link(doc: dict[str, Any], link: dict[str, Any]) -> dict[str, Any]:
    doc["network"]["links"].append(link)
    return doc


def _with_island(doc: dict[str, Any]) -> dict[str, Any]:
    doc["network"]["nodes"].append({"id": "island", "flops": "1 GFLOPS"})
    doc["training"]["labels_at"] = "island"
    return doc


def _text(doc: Any, fmt: str = "yaml") -> str:
    return dump(doc, fmt)


# class -> (file name, content (str or bytes) or a callable(folder) -> content, words)
CLASS_FILES: dict[str, tuple[str, Any, tuple[str, ...]]] = {
    "missing field": ("p.yaml", _text(tiny(("network.links.0.bandwidth", ...))),
                      ("network.links[0].bandwidth", "is missing")),
    "extra field": ("p.yaml", _text(tiny(("network.links.0.bandwith", "1 Mbps"))),
                    ("network.links[0].bandwith", "is not a known field")),
    "wrong type": ("p.yaml", _text(tiny(("training.batch_size", "8"))),
                   ("training.batch_size", "must be an integer")),
    "wrong type (section)": ("p.yaml", _text(tiny(("model.layers", "conv1"))),
                             ("model.layers", "must be a list")),
    "negative number": ("p.yaml", _text(tiny(("network.nodes.0.memory", -1))),
                        ("network.nodes[0].memory", "is negative")),
    "zero": ("p.json", _text(tiny(("network.links.0.bandwidth", 0)), "json"),
             ("network.links[0].bandwidth", "is zero")),
    "negative zero": ("p.json", _text(tiny(("network.links.1.bandwidth", -0.0)), "json"),
                      ("network.links[1].bandwidth", "is zero")),
    "NaN (YAML)": ("p.yaml", _text(tiny(("network.nodes.0.flops", float("nan")))),
                   ("network.nodes[0].flops", "is NaN")),
    "NaN (JSON)": ("p.json", _text(tiny(("network.nodes.0.flops", float("nan"))), "json"),
                   ("network.nodes[0].flops", "is not a valid JSON number")),
    "infinity": ("p.yaml", _text(tiny(("network.nodes.0.overhead", float("inf")))),
                 ("network.nodes[0].overhead", "is infinite")),
    "huge number 1e308": ("p.json", _text(tiny(("model.layers.0.fwd_flops", 1e308)), "json"),
                          ("model.layers[0].fwd_flops", "is too large; must be at most 1e+30")),
    "huge integer 10**400": ("p.json", _text(tiny(("model.layers.0.out_bytes", 10**400)),
                                             "json"),
                             ("model.layers[0].out_bytes", "beyond the range of a double")),
    "literal 1e400": ("p.json", _text(tiny(("network.nodes.2.memory", 1.0)), "json")
                      .replace('"memory": 1.0', '"memory": 1e400'),
                      ("network.nodes[2].memory", "beyond the range of a double")),
    "tiny rate": ("p.yaml", _text(tiny(("network.nodes.2.flops", 1e-40))),
                  ("network.nodes[2].flops", "is too small")),
    "unit string (unknown unit)": ("p.yaml", _text(tiny(("network.links.0.bandwidth",
                                                         "100 mbps"))),
                                   ("network.links[0].bandwidth", "unknown unit 'mbps'")),
    "unit string (another kind)": ("p.yaml", _text(tiny(("network.nodes.0.memory", "8 Gbps"))),
                                   ("network.nodes[0].memory", "unknown unit 'Gbps'")),
    "unit string (garbage)": ("p.yaml", _text(tiny(("network.links.0.latency", "fast"))),
                              ("network.links[0].latency", "is not a quantity")),
    "unknown id (link)": ("p.yaml", _text(tiny(("network.links.0.target", "ghost"))),
                          ("network.links[0].target", "is not the id of a node")),
    "unknown id (source)": ("p.yaml", _text(tiny(("training.source", "ghost"))),
                            ("training.source", "is not the id of a node")),
    "duplicate id": ("p.yaml", _text(tiny(("network.nodes.2.id", "src"))),
                     ("network.nodes[2].id", "is a duplicate id")),
    "duplicate link": ("p.yaml", _text(_with_link(tiny(), {"source": "r", "target": "src",
                                                           "bandwidth": "1 Gbps"})),
                       ("network.links[2]", "duplicates links[0]")),
    "self-loop": ("p.yaml", _text(tiny(("network.links.0.target", "src"))),
                  ("network.links[0]", "is a self-loop")),
    "disconnected graph (labels)": ("p.yaml", _text(_with_island(tiny())),
                                    ("training.labels_at", "is not reachable")),
    "disconnected graph (source alone)": (
        "p.yaml", _text(tiny(("network.links", []), ("network.nodes.0.memory", "10 kB"))),
        ("memory: the source 'src' reaches no other compute node", "short by")),
    "empty model": ("p.yaml", _text(tiny(("model.layers", []))),
                    ("model.layers", "is empty")),
    "empty network": ("p.yaml", _text(tiny(("network.nodes", []))),
                      ("network.nodes", "is empty")),
    "micro-batch > batch": ("p.yaml", _text(tiny(("training.micro_batch_size", 9))),
                            ("training.micro_batch_size", "must be <= 8")),
    "YAML bomb": ("p.yaml", _text(tiny(("description", "BOMB"))).replace("BOMB", BOMB),
                  ("description[", "expands to")),
    "deep nesting": ("p.yaml", _text(tiny(("description", "DEEP"))).replace(
        "DEEP", "[" * 3000 + "]" * 3000), ("is not valid YAML", "nesting depth")),
    "deep nesting (JSON)": ("p.json", _text(tiny(("description", "DEEP")), "json").replace(
        '"DEEP"', "[" * 200 + "]" * 200), ("description[0]", "is nested too deeply")),
    "duplicate key": ("p.json", json.dumps(tiny())[:-1] + ', "training": {}}',
                      ("training", "is given twice")),
    "non-UTF-8": ("p.yaml", _text(tiny()).encode() + b"# \xe9\n", ("is not UTF-8 text",)),
    "UTF-16": ("p.yaml", _text(tiny()).encode("utf-16"), ("is UTF-16 text",)),
    "binary garbage": ("p.yaml", bytes(random.Random(5).randrange(256) for _ in range(500)),
                       ("is not",)),
    "truncated JSON": ("p.json", json.dumps(tiny())[:-25], ("is not valid JSON",)),
    "YAML python tag": ("p.yaml", "network: !!python/object/apply:os.system ['true']\n",
                        ("is not valid YAML",)),
    "GraphML DTD (XXE)": ("p.yaml", "network: net.graphml\n" + _text(tiny(("network", ...))),
                          ("net.graphml", "document type declaration")),
    "GraphML unknown id": ("p.yaml", "network: bad.graphml\n" + _text(tiny(("network", ...))),
                           ("bad.graphml", "network.links[0].target", "is not the id")),
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli")
    (path / "net.graphml").write_text(GRAPHML.format(
        dtd='<!DOCTYPE g [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n', target="srv"))
    (path / "bad.graphml").write_text(GRAPHML.format(dtd="", target="ghost"))
    return path


def _class_file(folder: Path, cls: str) -> tuple[Path, tuple[str, ...]]:
    name, content, words = CLASS_FILES[cls]
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path, words


@pytest.mark.parametrize("cls", list(CLASS_FILES))
def test_every_class_with_pipesl_plan(folder: Path, cls: str) -> None:
    path, words = _class_file(folder, cls)
    line = expect_cli_error("CLI: pipesl plan (one file per class)",
                            ["plan", str(path), "--no-compare"], words)
    assert str(path) in line or "memory:" in line


@pytest.mark.parametrize("cls", list(CLASS_FILES))
def test_every_class_with_pipesl_evaluate(folder: Path, cls: str) -> None:
    path, words = _class_file(folder, cls)
    line = expect_cli_error("CLI: pipesl evaluate (one file per class)",
                            ["evaluate", str(path), str(TINY_PLAN)], words)
    assert str(path) in line or "memory:" in line


BAD_PLANS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "unknown node": ({"stages": [{"node": "src", "first_layer": 1, "last_layer": 2},
                                 {"node": "ghost", "first_layer": 3, "last_layer": 4}],
                      "routes": [["src", "r", "ghost"]], "micro_batch_size": 2},
                     ("plan.stages[1].node", "is not a node of the network")),
    "wrong layer range": ({"stages": [{"node": "src", "first_layer": 1, "last_layer": 2},
                                      {"node": "srv", "first_layer": 2, "last_layer": 4}],
                           "routes": [["src", "r", "srv"]], "micro_batch_size": 2},
                          ("plan.stages[1].first_layer", "must be 3")),
    "non-simple route": ({"stages": [{"node": "src", "first_layer": 1, "last_layer": 2},
                                     {"node": "srv", "first_layer": 3, "last_layer": 4}],
                          "routes": [["src", "r", "src", "r", "srv"]], "micro_batch_size": 2},
                         ("plan.routes[0]", "visits a node twice")),
    "hop over no link": ({"stages": [{"node": "src", "first_layer": 1, "last_layer": 2},
                                     {"node": "srv", "first_layer": 3, "last_layer": 4}],
                          "routes": [["src", "srv"]], "micro_batch_size": 2},
                         ("plan.routes[0]", "is not a link")),
    "micro-batch > batch": ({"stages": [{"node": "src", "first_layer": 1, "last_layer": 4}],
                             "micro_batch_size": 9}, ("plan.micro_batch_size", "between 1")),
    "misspelt key": ({"stages": [{"node": "src", "first_layer": 1, "last_layer": 4}],
                      "micro_batch_sise": 2}, ("plan.micro_batch_sise", "is not a known field")),
    "relay computing": ({"stages": [{"node": "src", "first_layer": 1, "last_layer": 2},
                                    {"node": "r", "first_layer": 3, "last_layer": 4}],
                         "routes": [["src", "r"]], "micro_batch_size": 2},
                        ("plan.stages[1].node", "cannot compute")),
}


@pytest.mark.parametrize("command", ["evaluate", "simulate"])
@pytest.mark.parametrize("case", list(BAD_PLANS))
def test_bad_plan_files(folder: Path, command: str, case: str) -> None:
    doc, words = BAD_PLANS[case]
    plan = folder / "bad-plan.json"
    plan.write_text(json.dumps(doc))
    problem = str(EXAMPLES / "tiny-line.yaml")
    argv = ["evaluate", problem, str(plan)] if command == "evaluate" else \
        ["simulate", problem, "--plan", str(plan)]
    expect_cli_error(f"CLI: pipesl {command} (bad plans)", argv, words)


def test_output_paths(folder: Path) -> None:
    """An --out folder that does not exist is one line too, before any planning."""
    expect_cli_error("CLI: options", ["plan", str(EXAMPLES / "tiny-line.yaml"), "--out",
                                      str(folder / "no" / "such" / "dir" / "p.json")],
                     ("--out", "does not exist"))
    expect_cli_error("CLI: options", ["plan", str(EXAMPLES / "tiny-line.yaml"), "-b", "9"],
                     ("--micro-batch-size", "must be <= batch_size (8)"))


def test_zero_cost_problem_plans(folder: Path) -> None:
    """A model with no work and no traffic plans (T = 0) and compares without dividing by 0."""
    doc = problem_to_dict(baseline(_si(tiny())))
    for layer in doc["model"]["layers"]:
        layer.update(fwd_flops=0, bwd_flops=0, out_bytes=0)
    doc["model"]["input_bytes"] = 0
    for node in doc["network"]["nodes"]:
        node["overhead"] = 0
    for link in doc["network"]["links"]:
        link["latency"] = 0
    path = folder / "zero.json"
    path.write_text(json.dumps(doc))
    code, _, err = run_cli(["plan", str(path)])
    record("CLI: valid edge cases", f"exit {code}")
    assert code == 0, err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["show", "plan", "evaluate", "simulate"])
def test_markup_in_names_is_printed_not_obeyed(folder: Path, command: str) -> None:
    """Ids, names and descriptions are the user's text: ``[/]`` or ``[link=...]`` in them must
    be printed as written, not read as rich markup (it crashed every command)."""
    doc = tiny()
    doc["name"], doc["description"] = "[/] [bold", "[link=http://x]click[/link] [/x]"
    doc["model"]["layers"][0]["name"] = "[/l1]"
    for node in doc["network"]["nodes"]:
        node["kind"] = "[red]"
    text = json.dumps(doc).replace('"src"', '"[/]"').replace('"srv"', '"s[/b]"')
    path = folder / "markup.json"
    path.write_text(text)
    plan = folder / "markup.plan.json"
    plan.write_text(TINY_PLAN.read_text().replace('"src"', '"[/]"').replace('"srv"', '"s[/b]"'))
    argv = {"show": ["show", str(path)], "plan": ["plan", str(path)],
            "evaluate": ["evaluate", str(path), str(plan)],
            "simulate": ["simulate", str(path), "--plan", str(plan)]}[command]
    code, out, err = run_cli(argv)
    record("CLI: valid edge cases", f"exit {code}")
    assert code == 0, err
    assert "[/]" in out


def _si(doc: dict[str, Any]) -> dict[str, Any]:
    from pipesl.problem import problem_from_dict

    return problem_to_dict(problem_from_dict(doc))


# ---------------------------------------------------------------- hypothesis through the CLI


def judge_cli(row: str, argv: list[str], where: str, expectation: Reject | Accept,
              infeasible_ok: bool = False) -> None:
    """A Reject must exit 1 naming the field; an Accept must run (exit 0) -- or, when the
    problem itself is refused on the objects or is infeasible, exit 1 saying so."""
    if isinstance(expectation, Reject):
        field = expectation.field
        prefix = (f"error: {where}: {field}: " if field else f"error: {where}: ") if where \
            else f"error: {field}: "
        rules = (expectation.rule,) if isinstance(expectation.rule, str) else expectation.rule
        line = expect_cli_error(row, argv, ())
        assert line.startswith(prefix), (prefix, line)
        assert any(r in line for r in rules), (rules, line)
        return
    code, _, err = run_cli(argv)
    record(row, f"exit {code}")
    assert "Traceback" not in err
    if code == 0:
        return
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: "), err
    from pipesl.exceptions import PipeslError
    from pipesl.problem import validate_problem

    try:
        validate_problem(expectation.expected)
    except PipeslError as exc:
        assert lines[0].endswith(str(exc)), (lines[0], str(exc))
        return
    assert infeasible_ok and "memory:" in lines[0], lines[0]


def run_cli_problem_case(command: str, cls: str, data: Any, folder: Path) -> None:
    doc = data.draw(base_documents(small=command == "plan"), label="base")
    base = baseline(doc)
    fmt = data.draw(st.sampled_from(["json", "yaml"]), label="format")
    expectation = mutate(cls, data.draw, doc, base, "problem", fmt)
    path = folder / f"{STEM}.{fmt}"
    path.write_text(dump(doc, fmt), encoding="utf-8")
    argv = ["show", str(path)] if command == "show" else \
        ["plan", str(path), "--json", "--no-compare"]
    judge_cli(f"CLI: pipesl {command}", argv, str(path), expectation, infeasible_ok=True)


@pytest.mark.parametrize("cls", list(MUTATIONS))
@CLI
@given(data=st.data())
def test_cli_show_mutation(cls: str, folder: Path, data: Any) -> None:
    run_cli_problem_case("show", cls, data, folder)


@pytest.mark.parametrize("cls", list(MUTATIONS))
@pytest.mark.slow
@SLOW
@given(data=st.data())
def test_cli_plan_mutation(cls: str, folder: Path, data: Any) -> None:
    run_cli_problem_case("plan", cls, data, folder)


@pytest.mark.parametrize("cls", ["bad number", "unit string", "missing field", "unknown id"])
@CLI
@given(data=st.data())
def test_cli_plan_mutation_sample(cls: str, folder: Path, data: Any) -> None:
    run_cli_problem_case("plan", cls, data, folder)


def run_cli_plan_case(command: str, cls: str, data: Any, folder: Path) -> None:
    problem, plan = base_case(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    problem_path = folder / "problem.json"
    problem_path.write_text(json.dumps(problem_to_dict(problem)))
    doc = json.loads(json.dumps(plan_document(evaluate(problem, plan))
                                if data.draw(st.booleans()) else plan_to_dict(plan)))
    expectation = PLAN_CLASSES[cls](data.draw, doc, problem, plan)
    from mutate import as_written

    expectation = as_written(expectation, "plan")
    path = folder / "plan.json"
    path.write_text(dump(doc, "json"))
    where = "" if isinstance(expectation, Reject) and expectation.error is PlanError \
        else str(path)
    argv = ["evaluate", str(problem_path), str(path), "--json"] if command == "evaluate" else \
        ["simulate", str(problem_path), "--plan", str(path), "--json"]
    judge_cli(f"CLI: pipesl {command}", argv, where, expectation)


@pytest.mark.parametrize("command", ["evaluate", "simulate"])
@pytest.mark.parametrize("cls", list(PLAN_CLASSES))
@CLI
@given(data=st.data())
def test_cli_plan_file_mutation(command: str, cls: str, folder: Path, data: Any) -> None:
    run_cli_plan_case(command, cls, data, folder)


# ---------------------------------------------------------------- the real program


@pytest.mark.parametrize("cls", ["YAML bomb", "GraphML DTD (XXE)"])
def test_real_program(folder: Path, cls: str) -> None:
    """The installed program, as a user runs it: exit 1, one line, no traceback, in time."""
    path, words = _class_file(folder, cls)
    proc = subprocess.run([sys.executable, "-m", "pipesl", "plan", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    record("CLI: real program (subprocess)", f"exit {proc.returncode}")
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for word in words:
        assert word in lines[0]
