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
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import networkx as nx
import yaml

from pipesl.exceptions import ProblemError
from pipesl.problem.parse import (
    Fields,
    model_from_dict,
    network_from_dict,
    training_from_dict,
)
from pipesl.problem.types import ChainModel, Network, Problem, TrainingSpec
from pipesl.problem.validate import validate_problem

__all__ = [
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
"""Largest input file read (64 MiB)."""


def read_text(path: str | Path) -> str:
    """Read a UTF-8 text file, turning I/O and decoding failures into ProblemError."""
    p = Path(path)
    try:
        if p.is_dir():
            raise ProblemError(str(p), "is a directory, not a file")
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ProblemError(str(p), f"is {size} bytes; files over {MAX_FILE_BYTES} are refused")
        data = p.read_bytes()
    except FileNotFoundError:
        raise ProblemError(str(p), "does not exist") from None
    except OSError as exc:
        raise ProblemError(str(p), f"cannot be read ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ProblemError(str(p), f"is not UTF-8 text (byte {exc.start})") from None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a valid JSON number")


def _parse_text(text: str, name: str, fmt: str) -> Any:
    """Parse JSON or YAML text; ``fmt`` is 'json', 'yaml' or 'auto'."""
    try:
        if fmt == "json":
            return json.loads(text, parse_constant=_reject_constant)
        return yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise ProblemError(name, f"is not valid JSON: {exc.msg} at line {exc.lineno}, "
                           f"column {exc.colno}") from None
    except ValueError as exc:  # NaN / Infinity in JSON
        raise ProblemError(name, f"is not valid JSON: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(exc, "problem", None) or type(exc).__name__
        raise ProblemError(name, f"is not valid YAML: {what}{where}") from None
    except RecursionError:
        raise ProblemError(name, "is nested too deeply to be a problem file") from None


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix in (".yaml", ".yml"):
        return "yaml"
    if suffix == ".graphml":
        return "graphml"
    return "auto"


def load_document(path: str | Path) -> Any:
    """Parse a JSON or YAML file into Python objects (no validation)."""
    p = Path(path)
    fmt = _format_of(p)
    if fmt == "graphml":
        raise ProblemError(str(p), "is GraphML; only a network can be given as GraphML")
    return _parse_text(read_text(p), str(p), "yaml" if fmt == "auto" else fmt)


# ---------------------------------------------------------------- networks


_GRAPHML_NS = "http://graphml.graphdrawing.org/xmlns"


def _graph_to_network(g: nx.Graph, name: str,
                      edge_order: list[tuple[str, str]] | None = None) -> Network:
    """A networkx graph -> Network; ``edge_order`` gives the links' order and orientation."""
    if g.is_multigraph():
        raise ProblemError(name, "is a multigraph; give at most one link per pair of nodes")
    if g.is_directed():
        raise ProblemError(name, "is a directed graph; links are undirected (bandwidth applies"
                           " to each direction)")
    nodes = [{"id": n, **_coerce_bools(d)} for n, d in g.nodes(data=True)]
    links = [{"source": u, "target": v, **d} for u, v, d in g.edges(data=True)]
    # An undirected networkx graph forgets which end was written first (it matters: a
    # half-duplex link is named link:<source>-<target>); the file remembers it.
    if (edge_order is not None and len(edge_order) == len(links)
            and all(g.has_edge(u, v) for u, v in edge_order)):
        links = [{"source": u, "target": v, **g.edges[u, v]} for u, v in edge_order]
    return network_from_dict({"nodes": nodes, "links": links}, f"{name}: network", strict=False)


def _coerce_bools(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """GraphML string attributes 'true'/'false' for ``compute`` become booleans; numeric
    ``x`` and ``y`` attributes (as written by :func:`dump_network` or Gephi) become ``pos``."""
    out = dict(attrs)
    value = out.get("compute")
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        out["compute"] = value.strip().lower() == "true"
    x, y = out.get("x"), out.get("y")
    if "pos" not in out and all(isinstance(c, int | float) and not isinstance(c, bool)
                                for c in (x, y)):
        out["pos"] = [x, y]
    return out


def _graphml_edge_order(text: str) -> list[tuple[str, str]] | None:
    """(source, target) of each edge of the first graph of a GraphML text, in file order."""
    try:
        graph = ET.fromstring(text).find(f"{{{_GRAPHML_NS}}}graph")
    except ET.ParseError:  # pragma: no cover - networkx parsed the same text already
        return None
    if graph is None:
        return None
    return [(str(e.get("source")), str(e.get("target")))
            for e in graph.findall(f"{{{_GRAPHML_NS}}}edge")]


def _write_graphml(network: Network, path: Path) -> None:
    """GraphML with the SPEC attribute names; links keep their order and orientation."""
    keys = [("node", "flops", "double"), ("node", "memory", "double"),
            ("node", "overhead", "double"), ("node", "compute", "boolean"),
            ("node", "kind", "string"), ("node", "x", "double"), ("node", "y", "double"),
            ("edge", "bandwidth", "double"), ("edge", "latency", "double"),
            ("edge", "duplex", "string")]
    root = ET.Element("graphml", xmlns=_GRAPHML_NS)
    key_id = {}
    for i, (owner, attr, kind) in enumerate(keys):
        key_id[attr] = f"d{i}"
        ET.SubElement(root, "key", {"id": f"d{i}", "for": owner, "attr.name": attr,
                                    "attr.type": kind})
    graph = ET.SubElement(root, "graph", edgedefault="undirected")

    def data(element: ET.Element, attr: str, value: Any) -> None:
        text = (("true" if value else "false") if isinstance(value, bool)
                else repr(float(value)) if isinstance(value, int | float) else str(value))
        ET.SubElement(element, "data", key=key_id[attr]).text = text

    doc = network_to_dict(network)
    for d in doc["nodes"]:
        element = ET.SubElement(graph, "node", id=d["id"])
        for attr, value in d.items():
            if attr == "pos":
                data(element, "x", value[0])
                data(element, "y", value[1])
            elif attr != "id":
                data(element, attr, value)
    for e in doc["links"]:
        element = ET.SubElement(graph, "edge", source=e["source"], target=e["target"])
        for attr in ("bandwidth", "latency", "duplex"):
            data(element, attr, e[attr])
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def _network_from_document(doc: Any, name: str) -> Network:
    if isinstance(doc, Mapping) and "network" in doc and "nodes" not in doc:
        doc = doc["network"]
    if not isinstance(doc, Mapping):
        raise ProblemError(name, "must hold a network: a mapping with nodes and links")
    keys = set(doc)
    if keys <= {"nodes", "links", "name", "description"}:
        return network_from_dict(doc, f"{name}: network" if name else "network")
    # networkx node-link JSON: directed/multigraph/graph/nodes/edges (or links).
    if doc.get("multigraph"):
        raise ProblemError(f"{name}: multigraph", "must be false; one link per pair of nodes")
    if doc.get("directed"):
        raise ProblemError(f"{name}: directed", "must be false; links are undirected")
    f = Fields(doc, name, ("directed", "multigraph", "graph", "nodes", "edges", "links"))
    edges = doc.get("edges", doc.get("links", []))
    return network_from_dict({"nodes": f.sequence("nodes"), "links": edges},
                             f"{name}: network", strict=False)


def load_network(path: str | Path) -> Network:
    """Load a network from a SPEC network file, node-link JSON or GraphML.

    Parameters
    ----------
    path : str or Path
        ``.graphml``, ``.json`` or ``.yaml``/``.yml``; or the name of a built-in network.

    Returns
    -------
    Network
    """
    p = Path(path)
    if not p.exists():
        from pipesl.problem.scenarios import builtin_path

        p = builtin_path("network", str(path))
    if _format_of(p) == "graphml":
        text = read_text(p)
        try:
            g = nx.parse_graphml(text)
        except Exception as exc:  # networkx raises several types for bad GraphML
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ProblemError(str(p), f"is not valid GraphML: {msg}") from None
        return _graph_to_network(g, str(p), _graphml_edge_order(text))
    return _network_from_document(load_document(p), str(p))


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
        _write_graphml(network, p)
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
    if isinstance(doc, Mapping) and "model" in doc and "layers" not in doc:
        doc = doc["model"]
    return model_from_dict(doc, f"{name}: model" if name else "model")


def load_model(path: str | Path) -> ChainModel:
    """Load a model profile (SPEC ``model`` section) from JSON/YAML, or a built-in by name."""
    p = Path(path)
    if not p.exists():
        from pipesl.problem.scenarios import builtin_path

        p = builtin_path("model", str(path))
    return _model_from_document(load_document(p), str(p))


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
        if candidate.exists():
            return load_network(candidate) if kind == "network" else load_model(candidate)
        from pipesl.problem.scenarios import builtin_names, builtin_path

        if value in builtin_names(kind):
            p = builtin_path(kind, value)
            return load_network(p) if kind == "network" else load_model(p)
        raise ProblemError(field, f"is neither a file nor a built-in {kind} (built-ins: "
                           f"{', '.join(builtin_names(kind))})", value)
    if kind == "network":
        return network_from_dict(value, field)
    return model_from_dict(value, field)


def problem_from_dict(doc: Any, base: Path | None = None, name: str = "") -> Problem:
    """Build and validate a problem from a parsed problem document."""
    f = Fields(doc, "", ("network", "model", "training", "name", "description"))
    network = _resolve(f.raw("network", required=True), "network", base, "network")
    model = _resolve(f.raw("model", required=True), "model", base, "model")
    training = training_from_dict(f.raw("training", required=True))
    title = f.raw("name")
    desc = f.raw("description")
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
    InfeasibleError
        The source reaches no other compute node and the model does not fit on it.
    """
    p = Path(path)
    if not p.exists():
        from pipesl.problem.scenarios import builtin_path

        p = builtin_path("scenario", str(path))
    doc = load_document(p)
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
    doc["training"] = {
        "source": tr.source, "batch_size": tr.batch_size,
        "micro_batch_size": tr.micro_batch_size, "schedule": tr.schedule,
        "state_factor": tr.state_factor, "routing": tr.routing, "labels_at": tr.labels_at,
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
