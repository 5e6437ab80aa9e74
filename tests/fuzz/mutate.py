"""Mutations of valid problem documents, one field at a time, each with the outcome it must have.

A base document is a valid problem written out in full (``problem_to_dict``: every optional
field explicit, SI numbers): a seeded random problem from ``tests/strategies.py``, a built-in
scenario or an example. A mutation changes one thing and returns the new document with its
:class:`~harness.Reject` (the dotted field and the rule the error must name) or
:class:`~harness.Accept` (the problem the file must load as, predicted on the objects; when
that problem breaks a cross-field rule, the load must fail the same way).

The predictions restate the documented rules (docs/formats.md, docs/errors.md) independently
of the loaders: defaults, ranges, units (a small table of factors of its own), references.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from harness import Accept, Expectation, Reject
from hypothesis import strategies as st

from pipesl.problem import (
    ChainModel,
    Network,
    Node,
    Problem,
    builtin_names,
    load_problem,
    problem_from_dict,
    problem_to_dict,
)
from strategies import random_problem

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
STEM = "case"
"""Every mutated file is written as ``case.json`` / ``case.yaml``: a deleted ``name`` is this."""
MAX_QUANTITY = 1e30
MIN_RATE = 1e-30
MAX_BATCH = 1_000_000

Draw = Callable[[st.SearchStrategy[Any]], Any]
Path_ = tuple[str | int, ...]


# ---------------------------------------------------------------- writing files


@dataclass(frozen=True)
class Lit:
    """A literal written verbatim into the file (``1e400``: no Python float holds it)."""

    text: str


def dump(doc: Any, fmt: str) -> str:
    """The document as JSON or YAML text; :class:`Lit` values are written verbatim."""
    literals: list[str] = []

    def sub(value: Any) -> Any:
        if isinstance(value, Lit):
            literals.append(value.text)
            return f"LIT{len(literals) - 1}LIT"
        if isinstance(value, dict):
            return {k: sub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [sub(v) for v in value]
        return value

    plain = sub(doc)
    if fmt == "json":
        text = json.dumps(plain, indent=1, ensure_ascii=False)
    else:
        text = yaml.dump(plain, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
                         sort_keys=False, allow_unicode=True, width=1000)
    for i, literal in enumerate(literals):
        text = re.sub(rf"""(["']?)LIT{i}LIT\1""", lambda _m, lit=literal: lit, text)
    return text


def dotted(path: Path_) -> str:
    """``("network", "nodes", 2, "flops")`` -> ``network.nodes[2].flops``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def get(doc: Any, path: Path_) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def put(doc: Any, path: Path_, value: Any) -> None:
    get(doc, path[:-1])[path[-1]] = value


def delete(doc: Any, path: Path_) -> None:
    del get(doc, path[:-1])[path[-1]]


# ---------------------------------------------------------------- base documents


@functools.cache
def _fixed_documents() -> tuple[tuple[str, str], ...]:
    """The built-in scenarios and the examples, as full JSON documents (name, text).

    Scenarios with several data owners (``training.sources``) are left out: the mutations
    edit the single-source training fields (``tests/problem/test_owners.py`` covers the
    owners' field errors).
    """
    out = []
    for name in builtin_names("scenario"):
        problem = load_problem(name)
        if problem.training.sources:
            continue
        out.append((name, json.dumps(problem_to_dict(problem))))
    for path in sorted(EXAMPLES.glob("*")):
        if path.suffix in (".yaml", ".json") and ".plan." not in path.name:
            out.append((path.stem, json.dumps(problem_to_dict(load_problem(path)))))
    return tuple(out)


def fixed_documents() -> list[tuple[str, dict[str, Any]]]:
    """Fresh copies of the fixed base documents."""
    return [(name, json.loads(text)) for name, text in _fixed_documents()]


def random_document(seed: int, **kwargs: Any) -> dict[str, Any]:
    """``problem_to_dict`` of a seeded random problem (``tests/strategies.py``)."""
    return problem_to_dict(random_problem(random.Random(seed), **kwargs))


def base_documents(small: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    """A base document: a random problem half of the time, else a built-in or an example.

    ``small``: only random problems and the tiny examples (for CLI runs that plan).
    """
    fixed = [doc for name, doc in fixed_documents() if not small or name.startswith("tiny")]
    seeds = st.integers(0, 2**32 - 1).map(
        lambda s: random_document(s, n_nodes=random.Random(s).randint(1, 6) if small else None))
    return st.one_of(seeds, st.sampled_from(fixed).map(copy.deepcopy))


# ---------------------------------------------------------------- the rules, restated

# (owner, field) -> kind; owners: node, link, model, layer
QUANTITIES: dict[tuple[str, str], str] = {
    ("node", "flops"): "flop_rate", ("node", "memory"): "bytes", ("node", "overhead"): "seconds",
    ("link", "bandwidth"): "bandwidth", ("link", "latency"): "seconds",
    ("model", "input_bytes"): "bytes",
    ("layer", "fwd_flops"): "flops", ("layer", "bwd_flops"): "flops",
    ("layer", "out_bytes"): "bytes", ("layer", "param_bytes"): "bytes",
    ("layer", "act_bytes"): "bytes",
}
POSITIVE = {("link", "bandwidth")}
RATES = {("node", "flops"), ("link", "bandwidth")}
INFINITE_OK = {("node", "memory")}

# Units of each kind with their SI factor (written here from docs/formats.md, not imported).
UNITS: dict[str, dict[str, float]] = {
    "bandwidth": {"bps": 1.0, "kbps": 1e3, "Mbps": 1e6, "Gbps": 1e9, "Gbit/s": 1e9,
                  "MBps": 8.0 * 1e6, "GB/s": 8.0 * 1e9, "Kibps": 1024.0, "bit/s": 1.0},
    "bytes": {"B": 1.0, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "KiB": 1024.0,
              "MiB": 2.0**20, "GiB": 2.0**30, "bit": 0.125, "Mbit": 0.125 * 1e6, "bytes": 1.0},
    "flop_rate": {"FLOPS": 1.0, "GFLOPS": 1e9, "TFLOPS": 1e12, "flop/s": 1.0, "MFLOP/s": 1e6},
    "flops": {"FLOP": 1.0, "GFLOP": 1e9, "MFLOPs": 1e6, "MAC": 2.0, "GMACs": 2.0 * 1e9},
    "seconds": {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9, "sec": 1.0,
                "min": 60.0, "h": 3600.0, "seconds": 1.0},
}
WRONG_UNITS: dict[str, list[str]] = {
    "bandwidth": ["GB", "ms", "TFLOPS", "Hz", "mbps"],
    "bytes": ["Mbps", "ms", "GFLOP", "mB", "KIB"],
    "flop_rate": ["GFLOP", "GB", "Mbps", "ms"],
    "flops": ["TFLOPS", "GB", "Mbps", "ms"],
    "seconds": ["GB", "Mbps", "kmin", "mh", "Gsecond"],
}
# Strings that are not quantities: (text, rule)
GARBAGE: list[tuple[str, str]] = [
    ("", "is not a quantity"), ("fast", "is not a quantity"), ("inf", "is not a quantity"),
    ("NaN GB", "is not a quantity"), ("one GB", "is not a quantity"), ("--1", "is not a quantity"),
    ("∞", "is not a quantity"), (".", "is not a quantity"), ("e9", "is not a quantity"),
    ("1 2 3", "unknown unit"), ("1e", "unknown unit"), ("0x10", "unknown unit"),
    ("1,000", "unknown unit"), ("1/0", "unknown unit"), ("5 furlongs", "unknown unit"),
    ("1" + " " * 150 + "B", "is longer than 100 characters"),
    ("9" * 120, "is longer than 100 characters"),
    ("1e400", "is too large to be a quantity"), ("-1e999 B", "is too large to be a quantity"),
]


def quantity_outcome(owner: str, name: str, value: float, node_computes: bool | None,
                     path: Path_) -> Reject | float:
    """The documented range rules of a quantity field for an SI ``value``."""
    field = dotted(path)
    key = (owner, name)
    if math.isnan(value):
        return Reject(field, "is NaN")
    if math.isinf(value):
        return value if key in INFINITE_OK and value > 0 else Reject(field, "is infinite")
    if value < 0:
        return Reject(field, "is negative")
    if value == 0 and key in POSITIVE:
        return Reject(field, "is zero; must be > 0")
    if value > MAX_QUANTITY:
        return Reject(field, f"is too large; must be at most {MAX_QUANTITY:g}")
    if key in RATES and 0 < value < MIN_RATE:
        return Reject(field, f"at least {MIN_RATE:g}")
    if key == ("node", "flops") and value == 0 and node_computes:
        return Reject(field, "must be > 0 on a node with compute: true")
    return value + 0.0


# ---------------------------------------------------------------- expected objects


def with_network(problem: Problem, nodes: Sequence[Node] | None = None,
                 links: Sequence[Any] | None = None) -> Problem:
    net = Network(tuple(problem.network.nodes if nodes is None else nodes),
                  tuple(problem.network.links if links is None else links))
    return Problem(net, problem.model, problem.training, problem.name, problem.description)


def edit(problem: Problem, path: Path_, value: Any) -> Problem:
    """``problem`` with the object field at document ``path`` set to ``value``."""
    net, model, tr = problem.network, problem.model, problem.training
    head = path[0]
    if head == "network":
        _, section, index, attr = path
        assert isinstance(index, int) and isinstance(attr, str)
        if section == "nodes":
            nodes = list(net.nodes)
            if attr == "pos" and value is not None:
                value = (float(value[0]), float(value[1]))
            nodes[index] = replace(nodes[index], **{attr: value})
            return with_network(problem, nodes=nodes)
        links = list(net.links)
        links[index] = replace(links[index], **{attr: value})
        return with_network(problem, links=links)
    if head == "model":
        if path[1] == "layers":
            _, _, index, attr = path
            assert isinstance(index, int) and isinstance(attr, str)
            layers = list(model.layers)
            layers[index] = replace(layers[index], **{attr: value})
            model = ChainModel(model.name, model.input_bytes, tuple(layers))
        else:
            model = replace(model, **{str(path[1]): value})
        return Problem(net, model, tr, problem.name, problem.description)
    if head == "training":
        tr = replace(tr, **{str(path[1]): value})
        return Problem(net, model, tr, problem.name, problem.description)
    assert head in ("name", "description")
    return replace(problem, **{str(head): value})


def baseline(doc: dict[str, Any]) -> Problem:
    """The problem the unmutated document loads as."""
    return problem_from_dict(copy.deepcopy(doc), name=STEM)


# ---------------------------------------------------------------- choosing fields


def leaves(doc: dict[str, Any]) -> list[tuple[str, str, Path_]]:
    """Every field of the document as (owner, name, path)."""
    out: list[tuple[str, str, Path_]] = []
    for key in doc:
        if key in ("name", "description"):
            out.append(("top", key, (key,)))
    for i, node in enumerate(doc["network"]["nodes"]):
        out += [("node", k, ("network", "nodes", i, k)) for k in node]
    for i, link in enumerate(doc["network"].get("links", [])):
        out += [("link", k, ("network", "links", i, k)) for k in link]
    out += [("model", k, ("model", k)) for k in doc["model"] if k != "layers"]
    for i, layer in enumerate(doc["model"]["layers"]):
        out += [("layer", k, ("model", "layers", i, k)) for k in layer]
    out += [("training", k, ("training", k)) for k in doc["training"]]
    return out


def pick(draw: Draw, doc: dict[str, Any], scope: str,
         accept: Callable[[str, str], bool] = lambda owner, name: True
         ) -> tuple[str, str, Path_]:
    """A field of ``scope`` ('problem', 'network' or 'model') that ``accept`` takes."""
    owners = {"problem": ("top", "node", "link", "model", "layer", "training"),
              "network": ("node", "link"), "model": ("model", "layer")}[scope]
    choices = [leaf for leaf in leaves(doc) if leaf[0] in owners and accept(leaf[0], leaf[1])]
    return draw(st.sampled_from(choices)) if choices else ("", "", ())


def new_id(draw: Draw, doc: dict[str, Any]) -> str | int:
    taken = {str(n["id"]) for n in doc["network"]["nodes"]}
    # brackets and slashes too: rich reads "[/]" as markup (a node so named once crashed
    # every command that prints it)
    ids = st.one_of(st.text("abcdefghijklmnopqrstuvwxyz_0123456789-", min_size=1, max_size=10),
                    st.text("ab[]/= ", min_size=1, max_size=8).filter(str.strip),
                    st.integers(0, 10**6))
    return draw(ids.filter(lambda x: str(x) not in taken))


# ---------------------------------------------------------------- the mutation classes

REQUIRED = {("node", "id"), ("link", "source"), ("link", "target"), ("link", "bandwidth"),
            ("model", "input_bytes"), ("layer", "name"), ("layer", "fwd_flops"),
            ("layer", "out_bytes"), ("training", "source"), ("training", "batch_size")}


def _default(owner: str, name: str, doc: dict[str, Any], path: Path_,
             base: Problem) -> Expectation:
    """What deleting an optional field means (its documented default)."""
    if owner == "top":
        return Accept(edit(base, path, STEM if name == "name" else ""))
    if owner == "node":
        node = get(doc, path[:-1])
        value: Any = {"memory": math.inf, "overhead": 0.0, "kind": "", "pos": None}.get(name)
        if name == "flops":
            if node.get("compute") is True:
                return Reject(dotted(path), "must be > 0 on a node with compute: true")
            value = 0.0
        if name == "compute":
            value = float(node.get("flops", 0)) > 0
        return Accept(edit(base, path, value))
    if owner == "link":
        return Accept(edit(base, path, {"latency": 0.0, "duplex": "half"}[name]))
    if owner == "model":
        return Accept(edit(base, path, "model"))
    if owner == "layer":
        layer = get(doc, path[:-1])
        value = {"bwd_flops": 2.0 * float(layer["fwd_flops"]), "param_bytes": 0.0,
                 "act_bytes": float(layer["out_bytes"])}[name]
        return Accept(edit(base, path, value))
    defaults = {"micro_batch_size": None, "schedule": "gpipe", "state_factor": 3.0,
                "routing": "optimize", "labels_at": None}
    return Accept(edit(base, path, defaults[name]))


def missing_field(draw: Draw, doc: dict[str, Any], base: Problem, scope: str) -> Expectation:
    """Delete one field (or write null, which means the same), or a whole section."""
    sections: list[Path_] = {
        "problem": [("network",), ("model",), ("training",), ("network", "nodes"),
                    ("model", "layers")],
        "network": [("network", "nodes")], "model": [("model", "layers")]}[scope]
    if draw(st.integers(0, 9)) == 0:
        path = draw(st.sampled_from(sections))
        delete(doc, path)
        return Reject(dotted(path), "is missing; it is required")
    owner, name, path = pick(draw, doc, scope)
    null = draw(st.booleans())
    if null:
        put(doc, path, None)
    else:
        delete(doc, path)
    if (owner, name) in REQUIRED:
        return Reject(dotted(path), "is missing; it is required")
    return _default(owner, name, doc, path, base)


KNOWN = {"top": ("network", "model", "training", "name", "description"),
         "network": ("nodes", "links", "name", "description"),
         "node": ("id", "flops", "memory", "overhead", "compute", "kind", "pos"),
         "link": ("source", "target", "bandwidth", "latency", "duplex"),
         "model": ("name", "input_bytes", "layers", "description", "source"),
         "layer": ("name", "fwd_flops", "bwd_flops", "out_bytes", "param_bytes", "act_bytes"),
         "training": ("source", "batch_size", "micro_batch_size", "schedule", "state_factor",
                      "routing", "labels_at", "sources", "owners", "replicas")}


def extra_field(draw: Draw, doc: dict[str, Any], base: Problem, scope: str) -> Expectation:
    """Add a key that is not a field (a typo such as ``bandwith`` or ``trainig``)."""
    places: list[tuple[str, Path_]] = []
    if scope == "problem":
        places += [("top", ()), ("training", ("training",))]
    if scope in ("problem", "network"):
        places += [("network", ("network",))]
        places += [("node", ("network", "nodes", i)) for i in range(len(doc["network"]["nodes"]))]
        places += [("link", ("network", "links", i))
                   for i in range(len(doc["network"].get("links", [])))]
    if scope in ("problem", "model"):
        places += [("model", ("model",))]
        places += [("layer", ("model", "layers", i)) for i in range(len(doc["model"]["layers"]))]
    owner, path = draw(st.sampled_from(places))
    typos = [k[:-1] for k in KNOWN[owner] if len(k) > 2] + [k + "s" for k in KNOWN[owner]]
    key = draw(st.one_of(st.sampled_from(typos),
                         st.text("abcdefghijklmnopqrstuvwxyz_-0123456789ABC", min_size=1,
                                 max_size=24)).filter(lambda k: k not in KNOWN[owner]))
    get(doc, path)[key] = draw(st.sampled_from([1, "x", None, [1], {"a": 1}]))
    return Reject(dotted((*path, key)), "is not a known field")


def _wrong_values(owner: str, name: str) -> tuple[list[Any], str]:
    if (owner, name) in QUANTITIES:
        return [True, False, [1], {"a": 1}, [], {}], "must be a number or a string with a unit"
    if name in ("batch_size", "micro_batch_size"):
        return [True, "12", [1], {"a": 1}, 2.5, 0.1], "must be an integer"
    if name == "state_factor":
        return [True, "3", [3], {"a": 3}], "must be a number"
    if name in ("id", "source", "target", "labels_at") or (owner in ("layer", "model")
                                                           and name == "name"):
        return [True, [1], {"a": 1}, 1.5, "", "   ", "x" * 201], ""
    if name in ("duplex", "schedule", "routing"):
        return [True, 1, [1], "HALF", "pipedream", ""], "must be one of"
    if name == "compute":
        return ["yes", "true", 1, 0, [True]], "must be true or false"
    if name == "kind":
        return [1, [1], True, {"a": 1}], "must be a string"
    if name == "pos":
        return ["0,0", [1], [1, "a"], {"x": 1}, [1, 2, 3], [True, 1]], \
            "must be a list of two finite numbers"
    assert owner == "top" or name in ("description", "source"), (owner, name)
    return [[1], {"a": 1}, True], "must be a string"


def wrong_type(draw: Draw, doc: dict[str, Any], base: Problem, scope: str) -> Expectation:
    """Replace a field by a value of another type, or a section by a scalar."""
    if draw(st.integers(0, 5)) == 0:
        lists: list[Path_] = []
        if scope in ("problem", "network"):
            lists += [("network", "nodes"), ("network", "links")]
            lists += [("network", "nodes", i) for i in range(len(doc["network"]["nodes"]))]
        if scope in ("problem", "model"):
            lists += [("model", "layers"), ("model", "layers", 0)]
        if scope == "problem":
            lists += [("training",), ("network",), ("model",)]
        path = draw(st.sampled_from(lists))
        if path in (("network", "nodes"), ("network", "links"), ("model", "layers")):
            put(doc, path, draw(st.sampled_from(["x", 5, {"a": 1}, True])))
            return Reject(dotted(path), "must be a list")
        put(doc, path, draw(st.sampled_from([5, [1], True] if len(path) == 1
                                            else ["x", 5, [1], True])))
        return Reject(dotted(path), "must be a mapping")
    owner, name, path = pick(draw, doc, scope,
                             lambda o, n: not (o == "model" and n in ("description", "source")))
    values, rule = _wrong_values(owner, name)
    value = draw(st.sampled_from(values))
    put(doc, path, value)
    if rule == "":  # an id: too long, blank or not a string
        rule = "is longer than 200" if value == "x" * 201 else "must be a non-empty string"
    if name == "micro_batch_size" and value == 0.1:
        rule = "must be an integer"
    return Reject(dotted(path), rule)


def _bad_numbers() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 0, 0.0, -1, 1e31, 1e308,
                         1.7976931348623157e308, 5e-324, 1e-31, 10**400, -(10**400),
                         Lit("1e400"), Lit("-1e400"), Lit("9" * 5000), Lit("1.0e+999")]),
        st.floats(allow_nan=False, allow_infinity=False, max_value=-1e-300),
        st.floats(min_value=1e-3, max_value=1e12),
        st.integers(1, 10**6),
    )


def _literal_outcome(value: Any, fmt: str, path: Path_) -> Reject | None:
    """Numbers no JSON or YAML file can hold: refused where they stand, whatever the field."""
    field = dotted(path)
    if isinstance(value, Lit) and fmt == "yaml" and "." not in value.text and \
            "e" in value.text.lower():
        return None  # YAML 1.1 reads 1e400 (no dot) as a string: the field's rules decide
    if isinstance(value, Lit) or (isinstance(value, int) and abs(value) > 2**1024):
        return Reject(field, "is too large: beyond the range of a double")
    if fmt == "json" and isinstance(value, float) and not math.isfinite(value):
        return Reject(field, "is not a valid JSON number")
    return None


def bad_number(draw: Draw, doc: dict[str, Any], base: Problem, scope: str,
               fmt: str) -> Expectation:
    """Negative, zero, -0.0, NaN, inf, 1e308, 10**400, 1e400, tiny, or a valid other number."""
    numeric = [leaf for leaf in leaves(doc) if (leaf[0], leaf[1]) in QUANTITIES
               or leaf[1] in ("batch_size", "micro_batch_size", "state_factor")]
    scoped = {"problem": ("node", "link", "model", "layer", "training"),
              "network": ("node", "link"), "model": ("model", "layer")}[scope]
    owner, name, path = draw(st.sampled_from([x for x in numeric if x[0] in scoped]))
    value = draw(_bad_numbers())
    put(doc, path, value)
    literal = _literal_outcome(value, fmt, path)
    if literal is not None:
        return literal
    field = dotted(path)
    if isinstance(value, Lit):  # a string in YAML
        rule = ("is too large to be a quantity" if (owner, name) in QUANTITIES
                else "must be a number" if name == "state_factor" else "must be an integer")
        return Reject(field, rule)
    if (owner, name) in QUANTITIES:
        node = get(doc, path[:-1]) if owner == "node" else {}
        outcome = quantity_outcome(owner, name, float(value), node.get("compute") is True, path)
        return outcome if isinstance(outcome, Reject) else Accept(edit(base, path, outcome))
    if name == "state_factor":
        if not math.isfinite(value) or value < 0 or value > MAX_QUANTITY:
            return Reject(field, "must be a finite number in [0, 1e+30]")
        return Accept(edit(base, path, float(value) + 0.0))
    # batch_size / micro_batch_size: integers (integral floats allowed)
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return Reject(field, "must be an integer")
    number = int(value)
    tr = base.training
    if number < 1:
        return Reject(field, "must be >= 1")
    if name == "batch_size":
        if number > MAX_BATCH:
            return Reject(field, f"must be <= {MAX_BATCH}")
        if tr.micro_batch_size is not None and tr.micro_batch_size > number:
            return Reject("training.micro_batch_size", f"must be <= {number}")
        return Accept(edit(base, path, number))
    if number > tr.batch_size:
        return Reject(field, f"must be <= {tr.batch_size}")
    return Accept(edit(base, path, number))


def unit_string(draw: Draw, doc: dict[str, Any], base: Problem, scope: str) -> Expectation:
    """A quantity written as a string: valid units (loaded as the SI value), units of another
    kind, unknown units, garbage and over-long strings."""
    owner, name, path = pick(draw, doc, scope, lambda o, n: (o, n) in QUANTITIES)
    kind = QUANTITIES[(owner, name)]
    field = dotted(path)
    how = draw(st.sampled_from(["valid", "valid", "wrong", "garbage", "numeric"]))
    if how == "garbage":
        text, rule = draw(st.sampled_from(GARBAGE))
        if (owner, name) in INFINITE_OK and text == "inf":
            put(doc, path, text)
            return Accept(edit(base, path, math.inf))
        put(doc, path, text)
        return Reject(field, rule)
    number = draw(st.sampled_from(["1", "2.5", "100", "0.25", ".5", "3e2", "7E-1", "1e3",
                                   "0", "-4", "+12"]))
    space = draw(st.sampled_from(["", " ", "  "]))
    if how == "wrong":
        put(doc, path, f"{number}{space}{draw(st.sampled_from(WRONG_UNITS[kind]))}")
        return Reject(field, "has unknown unit")
    if how == "numeric":
        put(doc, path, number)
        value = float(number)
    else:
        unit = draw(st.sampled_from(sorted(UNITS[kind])))
        put(doc, path, f"{number}{space}{unit}")
        value = float(number) * UNITS[kind][unit]
    node = get(doc, path[:-1]) if owner == "node" else {}
    outcome = quantity_outcome(owner, name, value, node.get("compute") is True, path)
    return outcome if isinstance(outcome, Reject) else Accept(edit(base, path, outcome))


def _first_reference(doc: dict[str, Any], node_id: str, scope: str) -> Reject | None:
    """The error a vanished node id causes: the first field that still names it."""
    for i, link in enumerate(doc["network"].get("links", [])):
        for end in ("source", "target"):
            if str(link[end]) == node_id:
                return Reject(f"network.links[{i}].{end}", "is not the id of a node")
    if scope != "problem":
        return None
    if str(doc["training"]["source"]) == node_id:
        return Reject("training.source", "is not the id of a node in the network")
    if doc["training"].get("labels_at") is not None and str(doc["training"]["labels_at"]) \
            == node_id:
        return Reject("training.labels_at", "is not the id of a node in the network")
    return None


def unknown_id(draw: Draw, doc: dict[str, Any], base: Problem, scope: str) -> Expectation:
    """A link end, the source or the label node naming no node; or a node renamed."""
    fresh = new_id(draw, doc)
    targets: list[Path_] = [("network", "links", i, end)
                            for i in range(len(doc["network"].get("links", [])))
                            for end in ("source", "target")]
    if scope == "problem":
        targets += [("training", "source"), ("training", "labels_at")]
    targets += [("network", "nodes", i, "id") for i in range(len(doc["network"]["nodes"]))]
    path = draw(st.sampled_from(targets))
    if path[-1] == "id":
        old = str(get(doc, path))
        put(doc, path, fresh)
        refused = _first_reference(doc, old, scope)
        if refused is not None:
            return refused
        return Accept(edit(base, path, str(fresh)))
    put(doc, path, fresh)
    if path[0] == "training":
        return Reject(dotted(path), "is not the id of a node in the network")
    return Reject(dotted(path), "is not the id of a node")


def duplicate_id(draw: Draw, doc: dict[str, Any], base: Problem, scope: str) -> Expectation:
    """Two nodes with one id (a copy, or a renamed node), or two links joining one pair."""
    nodes, links = doc["network"]["nodes"], doc["network"].get("links", [])
    how = draw(st.sampled_from(["copy node", "rename node", "copy link", "reverse link",
                                "rewire link"]))
    if how.endswith("link") and not links:
        how = "copy node"
    if how == "rename node" and len(nodes) < 2:
        how = "copy node"
    if how == "copy node":
        i = draw(st.integers(0, len(nodes) - 1))
        nodes.append(copy.deepcopy(nodes[i]))
        return Reject(f"network.nodes[{len(nodes) - 1}].id", f"is a duplicate id (also "
                      f"nodes[{i}])")
    if how == "rename node":
        i, j = draw(st.lists(st.integers(0, len(nodes) - 1), min_size=2, max_size=2,
                             unique=True))
        nodes[j]["id"] = nodes[i]["id"]
        return Reject(f"network.nodes[{max(i, j)}].id",
                      f"is a duplicate id (also nodes[{min(i, j)}])")
    i = draw(st.integers(0, len(links) - 1))
    if how == "rewire link" and len(links) > 1:
        j = draw(st.integers(0, len(links) - 1).filter(lambda x: x != i))
        links[j]["source"], links[j]["target"] = links[i]["source"], links[i]["target"]
        return Reject(f"network.links[{max(i, j)}]", f"duplicates links[{min(i, j)}]")
    dup = copy.deepcopy(links[i])
    if how == "reverse link":
        dup["source"], dup["target"] = dup["target"], dup["source"]
    links.append(dup)
    return Reject(f"network.links[{len(links) - 1}]", f"duplicates links[{i}]")


def self_loop(draw: Draw, doc: dict[str, Any], base: Problem, scope: str) -> Expectation:
    """A link from a node to itself (existing link rewired, or a new one)."""
    nodes, links = doc["network"]["nodes"], doc["network"].setdefault("links", [])
    if links and draw(st.booleans()):
        i = draw(st.integers(0, len(links) - 1))
        end = draw(st.sampled_from(["source", "target"]))
        other = "target" if end == "source" else "source"
        links[i][end] = links[i][other]
        return Reject(f"network.links[{i}]", "is a self-loop")
    node = draw(st.sampled_from(nodes))["id"]
    links.append({"source": node, "target": node, "bandwidth": 1e9})
    return Reject(f"network.links[{len(links) - 1}]", "is a self-loop")


def disconnected(draw: Draw, doc: dict[str, Any], base: Problem, scope: str) -> Expectation:
    """Cut links, drop all of them, or add an isolated node (perhaps holding the labels)."""
    links = doc["network"].get("links", [])
    how = draw(st.sampled_from(["cut", "cut", "no links", "island", "island labels"]))
    if how == "island labels" and scope != "problem":
        how = "island"
    if how == "cut" and links:
        i = draw(st.integers(0, len(links) - 1))
        del links[i]
        return Accept(with_network(base, links=[*base.network.links[:i],
                                                *base.network.links[i + 1:]]))
    if how in ("cut", "no links"):
        doc["network"]["links"] = []
        return Accept(with_network(base, links=[]))
    fresh = str(new_id(draw, doc))
    doc["network"]["nodes"].append({"id": fresh, "flops": 1e12, "memory": 1e9})
    expected = with_network(base, nodes=[*base.network.nodes,
                                         Node(fresh, flops=1e12, memory=1e9)])
    if how == "island labels":
        doc["training"]["labels_at"] = fresh
        if len(doc["network"]["nodes"]) > 1:
            return Reject("training.labels_at", "is not reachable from the source")
    return Accept(expected)


def empty_model(draw: Draw, doc: dict[str, Any], base: Problem, scope: str) -> Expectation:
    """No layers, no nodes, an empty section, or a model cut down to some of its layers."""
    how = draw(st.sampled_from(["no layers", "no nodes", "empty model", "empty network",
                                "fewer layers"]))
    if scope == "network" and how in ("no layers", "empty model", "fewer layers"):
        how = "no nodes"
    if scope == "model" and how in ("no nodes", "empty network"):
        how = "no layers"
    if how == "no layers":
        doc["model"]["layers"] = []
        return Reject("model.layers", "is empty; a model needs at least one layer")
    if how == "no nodes":
        doc["network"]["nodes"] = []
        return Reject("network.nodes", "is empty; a network needs at least one node")
    if how == "empty model":
        doc["model"] = {}
        return Reject("model.layers", "is missing")
    if how == "empty network":
        doc["network"] = {}
        return Reject("network.nodes", "is missing")
    layers = doc["model"]["layers"]
    keep = draw(st.integers(1, len(layers)))
    del layers[keep:]
    model = base.model
    return Accept(Problem(base.network, ChainModel(model.name, model.input_bytes,
                                                   model.layers[:keep]),
                          base.training, base.name, base.description))


def micro_over_batch(draw: Draw, doc: dict[str, Any], base: Problem,
                     scope: str) -> Expectation:
    """A fixed micro-batch size above the batch size (or the batch cut below it)."""
    tr = doc["training"]
    batch = int(tr["batch_size"])
    if draw(st.booleans()):
        tr["micro_batch_size"] = batch + draw(st.integers(1, 10**6))
        return Reject("training.micro_batch_size", f"must be <= {batch}")
    micro = draw(st.integers(2, 2 * MAX_BATCH))
    tr["micro_batch_size"] = micro
    tr["batch_size"] = new = draw(st.integers(1, micro - 1))
    if new > MAX_BATCH:
        return Reject("training.batch_size", f"must be <= {MAX_BATCH}")
    return Reject("training.micro_batch_size", f"must be <= {new}")


DOCUMENT_RULES = ("beyond the range of a double", "is not a valid JSON number",
                  "is given twice")
"""Rules checked on the parsed document before any field rule: their errors name the path as
it is written in the file (``layers[0]`` in a bare model file), not the SPEC field."""


def as_written(expectation: Expectation, section: str, renames: dict[str, str] | None = None
               ) -> Expectation:
    """For a file holding ``section`` bare (no top-level key): a document-level rejection names
    the path without the section (and with the file's own key names, e.g. ``edges``)."""
    if not isinstance(expectation, Reject) or not any(
            rule in expectation.rule for rule in DOCUMENT_RULES):
        return expectation
    field = expectation.field.removeprefix(f"{section}.")
    for old, new in (renames or {}).items():
        if field == old or field.startswith((f"{old}[", f"{old}.")):
            field = new + field[len(old):]
    return Reject(field, expectation.rule, expectation.error)


MUTATIONS: dict[str, Callable[..., Expectation]] = {
    "missing field": missing_field,
    "extra field": extra_field,
    "wrong type": wrong_type,
    "bad number": bad_number,
    "unit string": unit_string,
    "unknown id": unknown_id,
    "duplicate id": duplicate_id,
    "self-loop": self_loop,
    "disconnected graph": disconnected,
    "empty model": empty_model,
    "micro-batch > batch": micro_over_batch,
}
"""Every mutation class, by the name the tally uses."""

SCOPES = {"network": ("missing field", "extra field", "wrong type", "bad number", "unit string",
                      "unknown id", "duplicate id", "self-loop", "disconnected graph",
                      "empty model"),
          "model": ("missing field", "extra field", "wrong type", "bad number", "unit string",
                    "empty model")}
"""The classes that apply to a network file and to a model profile on their own."""


def mutate(cls: str, draw: Draw, doc: dict[str, Any], base: Problem, scope: str = "problem",
           fmt: str = "json") -> Expectation:
    """Apply one mutation of class ``cls`` to ``doc`` (in place); return its expectation."""
    function = MUTATIONS[cls]
    if cls == "bad number":
        return function(draw, doc, base, scope, fmt)
    return function(draw, doc, base, scope)
