"""Reading and writing problems, networks and model profiles.

Formats
-------
* **Problem file** (SPEC section 2), JSON or YAML: ``network``, ``model``, ``training`` and
  optional ``name``/``description``. ``network`` and ``model`` may be given inline or as a string
  naming a file (relative to the problem file) or a built-in (``pipesl scenarios``).
* **Network file**: the SPEC ``network`` section on its own (JSON/YAML), networkx node-link
  JSON (``nodes`` + ``edges`` or ``links``), or GraphML, all with the SPEC attribute names.
  Foreign graph formats may carry extra attributes (labels, coordinates); they are ignored.
* **Model profile**: the SPEC ``model`` section on its own (JSON/YAML), optionally under a
  top-level ``model:`` key.

Every malformed input raises :class:`~pipesl.exceptions.ProblemError` with one line naming the
file and the field.

Limits (``docs/errors.md``)
---------------------------
Files are read only up to :data:`MAX_FILE_BYTES` (:data:`MAX_YAML_BYTES` for YAML, which is
parsed far more slowly); a parsed document may nest at most :data:`MAX_DEPTH` levels and, with
YAML aliases expanded, hold at most :data:`MAX_VALUES` values (a "billion laughs" alias bomb is
refused, and counting it costs no more than the file's size); a key may appear once per
mapping; every number literal must fit in a double (``1e400`` is refused, not read as
infinity; only YAML's ``.inf`` is infinite).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from pipesl.exceptions import ProblemError
from pipesl.problem.graphml import read_graphml, write_graphml
from pipesl.problem.parse import (
    Fields,
    _key_name,
    model_from_dict,
    network_from_dict,
    training_from_dict,
)
from pipesl.problem.types import ChainModel, Network, Problem, TrainingSpec
from pipesl.problem.validate import validate_problem

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_VALUES",
    "MAX_YAML_BYTES",
    "compose_problem",
    "dump_network",
    "dump_problem",
    "load_document",
    "load_model",
    "load_network",
    "load_problem",
    "model_to_dict",
    "network_to_dict",
    "problem_from_dict",
    "problem_to_dict",
    "read_text",
]

MAX_FILE_BYTES = 64 * 2**20
"""Largest input file read (64 MiB): JSON, GraphML."""
MAX_YAML_BYTES = 8 * 2**20
"""Largest YAML file read (8 MiB); YAML parses at about 1 MB/s, so write bigger files as JSON."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and lists in a document (pipesl's own files need 5)."""
MAX_VALUES = 2_000_000
"""Most values a document may hold with YAML aliases expanded (an alias bomb has billions)."""


def _exists(path: Path) -> bool:
    """``Path.exists`` that is False, not an error, for names the OS refuses (too long...)."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def read_text(path: str | Path, limit: int = MAX_FILE_BYTES) -> str:
    """Read a UTF-8 text file of at most ``limit`` bytes, turning I/O and decoding failures
    into ProblemError. Never reads more than ``limit + 1`` bytes (``/dev/zero`` is refused)."""
    p = Path(path)
    too_big = f"is larger than {limit} bytes ({limit / 2**20:g} MiB); bigger files are refused"
    try:
        if p.is_dir():
            raise ProblemError(str(p), "is a directory, not a file")
        if p.stat().st_size > limit:
            raise ProblemError(str(p), too_big)
        with p.open("rb") as stream:
            data = stream.read(limit + 1)
    except FileNotFoundError:
        raise ProblemError(str(p), "does not exist") from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ProblemError(str(p), f"cannot be read ({reason})") from None
    if len(data) > limit:
        raise ProblemError(str(p), too_big)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ProblemError(str(p), "is UTF-16 text (it starts with a UTF-16 byte-order mark);"
                           " save it as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ProblemError(str(p), f"is not UTF-8 text (byte {exc.start})") from None


_TOO_LARGE = "is too large: beyond the range of a double (about 1.8e308)"


class _BadNumber(float):
    """A number literal pipesl refuses (``1e400`` beyond the float range, JSON's ``NaN``), kept
    with its text and rule until :func:`_check_document` names its field. Never leaves this
    module."""

    text: str
    rule: str

    def __new__(cls, text: str, rule: str = _TOO_LARGE) -> _BadNumber:
        number = super().__new__(cls, "-inf" if text.lstrip().startswith("-") else "inf")
        number.text = text
        number.rule = rule
        return number


def _json_constant(text: str) -> _BadNumber:
    return _BadNumber(text, f"is not valid JSON: {text} is not a valid JSON number (leave the "
                      'field out, or write an unbounded memory as "inf")')


def _json_int(text: str) -> int | float:
    if len(text) <= 300:
        return int(text)
    return _BadNumber(text) if len(text) > 400 or _beyond_float(int(text)) else int(text)


def _json_float(text: str) -> float:
    number = float(text)
    return _BadNumber(text) if math.isinf(number) else number


def _beyond_float(number: int) -> bool:
    try:
        float(number)
    except OverflowError:
        return True
    return False


_YAML_BASE: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _YamlLoader(_YAML_BASE):
    """``yaml.safe_load`` that records duplicate keys and marks numbers beyond the float range.

    libyaml (``CSafeLoader``) caps nesting at 1000 levels by itself; the pure-Python fallback
    raises RecursionError, which :func:`_parse_text` reports.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: dict[int, list[tuple[Any, int | None]]] = {}

    def construct_yaml_map(self, node: yaml.MappingNode) -> Any:
        data: dict[Any, Any] = {}
        yield data
        seen: set[Any] = set()
        duplicates = []
        for key_node, _ in node.value:  # the node's own keys; merged ones (<<) may be replaced
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node)
            if key in seen:
                duplicates.append((key, key_node.start_mark.line + 1))
            seen.add(key)
        data.update(self.construct_mapping(node))
        if duplicates:
            self.duplicates[id(data)] = duplicates

    def construct_yaml_int(self, node: yaml.ScalarNode) -> Any:
        text = str(node.value)
        if len(text) > 400:  # beyond any float, and beyond Python's int(str) digit limit
            return _BadNumber(text)
        number = super().construct_yaml_int(node)
        return _BadNumber(text) if _beyond_float(number) else number

    def construct_yaml_float(self, node: yaml.ScalarNode) -> Any:
        number = super().construct_yaml_float(node)
        if math.isinf(number) and "inf" not in str(node.value).lower():
            return _BadNumber(str(node.value))
        return number


_YamlLoader.add_constructor("tag:yaml.org,2002:map", _YamlLoader.construct_yaml_map)
_YamlLoader.add_constructor("tag:yaml.org,2002:int", _YamlLoader.construct_yaml_int)
_YamlLoader.add_constructor("tag:yaml.org,2002:float", _YamlLoader.construct_yaml_float)


def _parse_text(text: str, name: str, fmt: str) -> Any:
    """Parse JSON or YAML text (``fmt`` 'json' or 'yaml') and check the document's limits."""
    duplicates: dict[int, list[tuple[Any, int | None]]] = {}

    def json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        data = dict(pairs)
        if len(data) != len(pairs):
            seen: set[str] = set()
            repeated: list[tuple[Any, int | None]] = []
            for key, _ in pairs:
                if key in seen:
                    repeated.append((key, None))
                seen.add(key)
            duplicates[id(data)] = repeated
        return data

    try:
        if fmt == "json":
            doc = json.loads(text, parse_constant=_json_constant, parse_int=_json_int,
                             parse_float=_json_float, object_pairs_hook=json_object)
        else:
            loader = _YamlLoader(text)
            try:
                doc = loader.get_single_data()
            finally:
                loader.dispose()
            duplicates = loader.duplicates
    except json.JSONDecodeError as exc:
        raise ProblemError(name, f"is not valid JSON: {exc.msg} at line {exc.lineno}, "
                           f"column {exc.colno}") from None
    except ValueError as exc:  # pragma: no cover - every number literal is parsed above
        raise ProblemError(name, f"is not valid JSON: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(exc, "problem", None) or type(exc).__name__
        raise ProblemError(name, f"is not valid YAML: {what}{where}") from None
    except RecursionError:
        raise ProblemError(name, f"is nested too deeply (more than {MAX_DEPTH} levels)") from None
    _check_document(doc, name, duplicates)
    return doc


def _check_document(doc: Any, name: str,
                    duplicates: Mapping[int, list[tuple[Any, int | None]]]) -> None:
    """Refuse what no field rule sees: numbers beyond the float range, repeated keys, nesting
    deeper than :data:`MAX_DEPTH`, self-reference and alias expansion beyond
    :data:`MAX_VALUES`.

    Each mapping and list is visited once (shared ones, i.e. YAML aliases, are measured from a
    memo), so the cost is the size of the file, not of its expansion.
    """
    sizes: dict[int, tuple[int, int]] = {}  # id -> (values when expanded, depth)
    entered: set[int] = set()  # containers on the current path

    def where(path: str) -> str:
        if len(path) > 80:  # a path 64 levels deep
            path = path[:77] + "..."
        return f"{name}: {path}" if path else name

    def child(path: str, key: Any) -> str:
        if isinstance(key, int) and not isinstance(key, bool):
            return f"{path}[{key}]"
        label = _key_name(key)
        return f"{path}.{label}" if path else label

    stack: list[tuple[Any, str, int, bool]] = [(doc, "", 1, False)]
    while stack:
        value, path, depth, done = stack.pop()
        if isinstance(value, _BadNumber):
            raise ProblemError(where(path), value.rule, value.text)
        if not isinstance(value, dict | list):
            continue
        key = id(value)
        items = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
        if done:
            entered.discard(key)
            inner = [sizes[id(v)] for _, v in items if isinstance(v, dict | list)]
            total = 1 + len(items) + sum(n - 1 for n, _ in inner)
            sizes[key] = (total, 1 + max((d for _, d in inner), default=0))
            if total > MAX_VALUES:
                raise ProblemError(where(path), f"expands to {total} values, more than "
                                   f"{MAX_VALUES} (YAML aliases repeat parts of the document; "
                                   "is it an alias bomb?)")
            continue
        if key in entered:
            raise ProblemError(where(path), "contains itself (a recursive YAML alias)")
        if key in sizes:
            if depth - 1 + sizes[key][1] > MAX_DEPTH:
                raise ProblemError(where(path), f"is nested too deeply (more than {MAX_DEPTH} "
                                   "levels)")
            continue
        if depth > MAX_DEPTH:
            raise ProblemError(where(path), f"is nested too deeply (more than {MAX_DEPTH} "
                               "levels)")
        for repeated, line in duplicates.get(key, ()):
            at = f" (line {line})" if line else ""
            raise ProblemError(where(child(path, repeated)), f"is given twice{at}; a key may "
                               "appear once in a mapping")
        entered.add(key)
        stack.append((value, path, depth, True))
        for k, v in reversed(items):
            if isinstance(k, _BadNumber):
                raise ProblemError(where(path), f"has a key that {k.rule}", k.text)
            stack.append((v, child(path, k), depth + 1, False))


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix in (".yaml", ".yml"):
        return "yaml"
    if suffix == ".graphml":
        return "graphml"
    return "auto"


def load_document(path: str | Path, expected: str = "a mapping") -> Any:
    """Parse a JSON or YAML file into Python objects (no validation); an empty file is refused
    naming the file and what it should hold (``expected``)."""
    p = Path(path)
    fmt = _format_of(p)
    if fmt == "graphml":
        raise ProblemError(str(p), "is GraphML; only a network can be given as GraphML")
    fmt = "yaml" if fmt == "auto" else fmt
    text = read_text(p, MAX_YAML_BYTES if fmt == "yaml" else MAX_FILE_BYTES)
    doc = _parse_text(text, str(p), fmt)
    if doc is None:  # YAML reads an empty file (or a lone ~) as null
        raise ProblemError(str(p), f"is empty; expected {expected}")
    return doc


# ---------------------------------------------------------------- networks


def _unwrap(doc: Any, key: str, name: str) -> Any:
    """The section under a top-level ``network:``/``model:`` key. Its neighbours may be the
    other keys of a problem file (a problem file serves as a network or model file), but a
    typo beside it is an error, not silently dropped."""
    if isinstance(doc, Mapping) and key in doc and not ({"nodes", "layers"} & set(doc)):
        allowed = (key, "name", "description", *(k for k in ("network", "model", "training")
                                                  if k != key))
        for other in doc:
            if other not in allowed:
                raise ProblemError(f"{name}: {_key_name(other)}" if name else _key_name(other),
                                   f"is not a known field of a {key} file; expected one of "
                                   f"{', '.join(allowed)}")
        try:
            Fields(doc, "", allowed).text("name")
            Fields(doc, "", allowed).text("description")
        except ProblemError as exc:
            raise ProblemError(f"{name}: {exc.field}" if name else exc.field, exc.rule,
                               exc.value) from None
        return doc[key]
    return doc


_NODE_LINK_KEYS = ("directed", "multigraph", "graph", "edges")


def _network_from_document(doc: Any, name: str) -> Network:
    doc = _unwrap(doc, "network", name)
    if not isinstance(doc, Mapping):
        raise ProblemError(name, "must hold a network: a mapping with nodes and links")
    if not any(key in doc for key in _NODE_LINK_KEYS):  # the SPEC section: strict
        return network_from_dict(doc, f"{name}: network" if name else "network")
    # networkx node-link JSON: directed/multigraph/graph/nodes/edges (or links).
    for key, why in (("multigraph", "one link per pair of nodes"),
                     ("directed", "links are undirected")):
        if doc.get(key) not in (None, False, 0):
            raise ProblemError(f"{name}: {key}", f"must be false; {why}")
    try:
        Fields(doc, "", ("directed", "multigraph", "graph", "nodes", "edges", "links"))
    except ProblemError as exc:
        raise ProblemError(f"{name}: {exc.field}" if name else exc.field, exc.rule) from None
    if "edges" in doc and "links" in doc:
        raise ProblemError(f"{name}: links" if name else "links", "is given beside edges; "
                           "node-link JSON holds its links under one of the two keys")
    # Checked as the SPEC network section: errors name network.nodes[i] and network.links[i]
    # (the file's edges).
    edges = doc["edges"] if "edges" in doc else doc.get("links")
    return network_from_dict({"nodes": doc.get("nodes"), "links": edges},
                             f"{name}: network" if name else "network", strict=False)


def load_network(path: str | Path, geo_latency: bool = False) -> Network:
    """Load a network from a SPEC network file, node-link JSON or GraphML.

    Parameters
    ----------
    path : str or Path
        ``.graphml``, ``.json`` or ``.yaml``/``.yml``; or the name of a built-in network.
    geo_latency : bool
        GraphML only: a link without latency between nodes with Latitude/Longitude (Topology
        Zoo) gets the great-circle distance over the speed of light in fibre.

    Returns
    -------
    Network
    """
    p = Path(path)
    if not _exists(p):
        from pipesl.problem.scenarios import builtin_path

        p = builtin_path("network", str(path))
    if _format_of(p) == "graphml":
        doc = read_graphml(read_text(p), str(p), geo_latency=geo_latency)
        return network_from_dict(doc, f"{p}: network", strict=False)
    if geo_latency:
        raise ProblemError(str(p), "great-circle latencies need a GraphML network with "
                           "Latitude/Longitude (Topology Zoo)")
    return _network_from_document(
        load_document(p, "a mapping with the network's nodes and links"), str(p))


def network_to_dict(network: Network) -> dict[str, Any]:
    """The SPEC ``network`` section with SI numbers."""
    nodes = []
    for n in network.nodes:
        d: dict[str, Any] = {"id": n.id, "flops": n.flops}
        if math.isfinite(n.memory):
            d["memory"] = n.memory
        d["overhead"] = n.overhead
        d["compute"] = n.can_compute
        if n.kind:
            d["kind"] = n.kind
        if n.pos is not None:
            d["pos"] = list(n.pos)
        nodes.append(d)
    links = [{"source": e.source, "target": e.target, "bandwidth": e.bandwidth,
              "latency": e.latency, "duplex": e.duplex} for e in network.links]
    return {"nodes": nodes, "links": links}


def dump_network(network: Network, path: str | Path) -> None:
    """Write a network as GraphML, node-link JSON (``.json``) or SPEC YAML."""
    p = Path(path)
    fmt = _format_of(p)
    if fmt == "graphml":
        write_graphml(network_to_dict(network), p)
        return
    if fmt == "json":
        # networkx node-link JSON, written directly so that links keep order and orientation.
        doc = network_to_dict(network)
        node_link = {"directed": False, "multigraph": False, "graph": {},
                     "nodes": doc["nodes"], "edges": doc["links"]}
        p.write_text(json.dumps(node_link, indent=2) + "\n")
        return
    p.write_text(yaml.safe_dump({"network": network_to_dict(network)}, sort_keys=False))


# ---------------------------------------------------------------- models


def _model_from_document(doc: Any, name: str) -> ChainModel:
    return model_from_dict(_unwrap(doc, "model", name), f"{name}: model" if name else "model")


def load_model(path: str | Path) -> ChainModel:
    """Load a model profile (SPEC ``model`` section) from JSON/YAML, or a built-in by name."""
    p = Path(path)
    if not _exists(p):
        from pipesl.problem.scenarios import builtin_path

        p = builtin_path("model", str(path))
    return _model_from_document(load_document(p, "a mapping with the model's layers"), str(p))


def model_to_dict(model: ChainModel) -> dict[str, Any]:
    """The SPEC ``model`` section with SI numbers."""
    return {
        "name": model.name,
        "input_bytes": model.input_bytes,
        "layers": [{"name": x.name, "fwd_flops": x.fwd_flops, "bwd_flops": x.bwd_flops,
                    "out_bytes": x.out_bytes, "param_bytes": x.param_bytes,
                    "act_bytes": x.act_bytes} for x in model.layers],
    }


# ---------------------------------------------------------------- problems


def _resolve(value: Any, kind: str, base: Path | None, field: str) -> Network | ChainModel:
    """An inline section, or a string naming a file (relative to ``base``) or a built-in."""
    if isinstance(value, str):
        candidate = (base / value) if base is not None else Path(value)
        if value.strip() and _exists(candidate) and not candidate.is_dir():
            return load_network(candidate) if kind == "network" else load_model(candidate)
        from pipesl.problem.scenarios import (
            PROFILE_HINT,
            builtin_names,
            builtin_path,
            canonical_name,
        )

        if canonical_name(kind, value) in builtin_names(kind):
            p = builtin_path(kind, value)
            return load_network(p) if kind == "network" else load_model(p)
        hint = f"; {PROFILE_HINT}" if kind == "model" else ""
        raise ProblemError(field, f"is neither a file nor a built-in {kind} (built-ins: "
                           f"{', '.join(builtin_names(kind))}){hint}", value)
    if kind == "network":
        return network_from_dict(value, field)
    return model_from_dict(value, field)


def problem_from_dict(doc: Any, base: Path | None = None, name: str = "") -> Problem:
    """Build and validate a problem from a parsed problem document."""
    f = Fields(doc, "", ("network", "model", "training", "name", "description"))
    network = _resolve(f.raw("network", required=True), "network", base, "network")
    model = _resolve(f.raw("model", required=True), "model", base, "model")
    training = training_from_dict(f.raw("training", required=True))
    title = f.text("name")
    desc = f.text("description")
    assert isinstance(network, Network) and isinstance(model, ChainModel)
    problem = Problem(network, model, training, str(title or name), str(desc or ""))
    return validate_problem(problem)


def load_problem(path: str | Path) -> Problem:
    """Load a problem file (SPEC section 2), or a built-in scenario by name.

    Parameters
    ----------
    path : str or Path
        A ``.json``/``.yaml`` problem file, or a scenario name from ``pipesl scenarios``
        (for instance ``edge-campus``).

    Returns
    -------
    Problem
        Parsed and validated.

    Raises
    ------
    ProblemError
        The file is missing or malformed; the message names the field and the rule.
    """
    p = Path(path)
    if not _exists(p):
        from pipesl.problem.scenarios import builtin_path

        p = builtin_path("scenario", str(path))
    doc = load_document(p, "a mapping with keys network, model, training (name, description)")
    try:
        return problem_from_dict(doc, base=p.parent, name=p.stem)
    except ProblemError as exc:
        if not str(exc).startswith(str(p)):
            raise ProblemError(f"{p}: {exc.field}" if exc.field else str(p), exc.rule,
                               exc.value) from None
        raise


def compose_problem(network: Network | str | Path, model: ChainModel | str | Path,
                    training: TrainingSpec | Mapping[str, Any], name: str = "") -> Problem:
    """Combine a network, a model profile and training options into a validated problem.

    ``network`` and ``model`` may be objects, file paths or built-in names; ``training`` a
    :class:`TrainingSpec` or a mapping with the SPEC ``training`` fields.
    """
    net = network if isinstance(network, Network) else load_network(network)
    mdl = model if isinstance(model, ChainModel) else load_model(model)
    tr = training if isinstance(training, TrainingSpec) else training_from_dict(training)
    return validate_problem(Problem(net, mdl, tr, name))


def problem_to_dict(problem: Problem) -> dict[str, Any]:
    """The SPEC problem document with SI numbers."""
    tr = problem.training
    doc: dict[str, Any] = {}
    if problem.name:
        doc["name"] = problem.name
    if problem.description:
        doc["description"] = problem.description
    doc["network"] = network_to_dict(problem.network)
    doc["model"] = model_to_dict(problem.model)
    if not tr.sources:
        doc["training"] = {
            "source": tr.source, "batch_size": tr.batch_size,
            "micro_batch_size": tr.micro_batch_size, "schedule": tr.schedule,
            "state_factor": tr.state_factor, "routing": tr.routing, "labels_at": tr.labels_at,
        }
        return doc
    sources = []
    for o in tr.sources:
        entry: dict[str, Any] = {"node": o.node, "batch_size": o.batch_size,
                                 "micro_batch_size": o.micro_batch_size,
                                 "labels_at": o.labels_at}
        if o.name:
            entry["name"] = o.name
        sources.append(entry)
    doc["training"] = {
        "sources": sources, "owners": tr.owners_mode, "replicas": tr.replicas,
        "schedule": tr.schedule, "state_factor": tr.state_factor, "routing": tr.routing,
    }
    return doc


def dump_problem(problem: Problem, path: str | Path) -> None:
    """Write a problem as JSON (``.json``) or YAML (anything else), SI numbers throughout."""
    p = Path(path)
    doc = problem_to_dict(problem)
    if _format_of(p) == "json":
        p.write_text(json.dumps(doc, indent=2) + "\n")
    else:
        p.write_text(yaml.safe_dump(doc, sort_keys=False))
