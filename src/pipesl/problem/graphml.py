"""GraphML networks: read them with the SPEC attribute names, write what networkx reads back.

Reading uses :mod:`xml.etree.ElementTree` directly (not ``networkx.parse_graphml``, which
silently invents a node for an edge end it does not know, merges two nodes of the same id,
drops nested graphs and every graph after the first, and reports a bad number without saying
where). The reader:

* refuses a document type declaration (``<!DOCTYPE``, ``<!ENTITY``) before parsing, so no
  entity is ever declared, expanded or fetched (no billion laughs in XML, no XXE);
* wants exactly one ``<graph>``, undirected, without hyperedges or nested graphs;
* converts the ``<data>`` of the SPEC attributes by their ``attr.type`` and hands everything to
  :func:`pipesl.problem.parse.network_from_dict`, so an error names the field
  (``network.nodes[2].memory``) exactly as in a problem file;
* keeps the links' order and orientation as written (a half-duplex link is named
  ``link:<source>-<target>``).

Attributes other than the SPEC ones (colours, yEd graphics) are ignored, except a name that
looks like a misspelt SPEC one (``overhed``, ``Memory``), which is refused: it would silently
take its default.

Topology Zoo files (topology-zoo.org) are read as they are: an edge's ``LinkSpeedRaw`` (bit/s),
or ``LinkSpeed`` with ``LinkSpeedUnits`` (K, M, G, T), gives its bandwidth; a node's
``Latitude``/``Longitude`` its position (x = longitude, y = latitude, for the placement map); a
node's ``label`` its id when the ids are bare numbers and every label is given and unique;
with ``geo_latency`` a link without a latency gets the great-circle distance between its ends
over :data:`FIBRE_SPEED` (light in fibre). Such a network has no compute nodes (every node is
a relay) until ``flops`` are given; ``pipesl show net.graphml --out net.yaml`` writes it as a
SPEC network file to edit.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipesl.exceptions import ProblemError
from pipesl.problem.parse import unknown_field_rule

__all__ = ["FIBRE_SPEED", "GRAPHML_NS", "great_circle_m", "read_graphml", "write_graphml"]

GRAPHML_NS = "http://graphml.graphdrawing.org/xmlns"
_NODE_ATTRS = ("flops", "memory", "overhead", "compute", "kind", "x", "y")
_EDGE_ATTRS = ("bandwidth", "latency", "duplex")
_ZOO_NODE = ("label", "Latitude", "Longitude")
_ZOO_EDGE = ("LinkSpeedRaw", "LinkSpeed", "LinkSpeedUnits")
_SPEED_UNITS = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
FIBRE_SPEED = 2.0e8
"""Metres per second of light in optical fibre (about 2/3 c), for great-circle latencies."""
EARTH_RADIUS_M = 6_371_000.0
_DTD = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_TRUE = ("true", "1")
_FALSE = ("false", "0")


def _local(tag: object) -> str:
    """The tag without its namespace (``{ns}node`` -> ``node``); comments have no str tag."""
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _convert(text: str | None, kind: str, field: str) -> Any:
    """A ``<data>`` text as the Python value of its GraphML ``attr.type``."""
    raw = "" if text is None else text.strip()
    if kind == "boolean":
        if raw.lower() in _TRUE + _FALSE:
            return raw.lower() in _TRUE
        raise ProblemError(field, "must be true or false (GraphML attr.type boolean)", raw)
    if kind in ("int", "long"):
        if len(raw) > 400 or not re.fullmatch(r"[-+]?\d+", raw):
            raise ProblemError(field, f"is not an integer (GraphML attr.type {kind})", raw)
        return int(raw)
    if kind in ("float", "double"):
        try:
            value = float(raw)
        except ValueError:
            raise ProblemError(field, f"is not a number (GraphML attr.type {kind})",
                               raw) from None
        if math.isinf(value) and "inf" not in raw.lower():
            raise ProblemError(field, "is too large: beyond the range of a double "
                               "(about 1.8e308)", raw)
        return value
    return "" if text is None else text


def _coerce(attrs: dict[str, Any]) -> dict[str, Any]:
    """``compute`` written as the strings 'true'/'false' becomes a boolean; numeric ``x`` and
    ``y`` (as written by :func:`write_graphml` or Gephi) become ``pos``."""
    value = attrs.get("compute")
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        attrs["compute"] = value.strip().lower() == "true"
    x, y = attrs.pop("x", None), attrs.pop("y", None)
    if all(isinstance(c, int | float) and not isinstance(c, bool) for c in (x, y)):
        attrs["pos"] = [x, y]
    return attrs


def great_circle_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres between two points given in degrees (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def _number(value: Any) -> float | None:
    """A Topology Zoo number, written as a double or as text; None when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _zoo_node(attrs: dict[str, Any]) -> dict[str, Any]:
    """Latitude/Longitude -> pos (when no x/y); the label is kept aside for the ids."""
    lat, lon = _number(attrs.pop("Latitude", None)), _number(attrs.pop("Longitude", None))
    if "pos" not in attrs and lat is not None and lon is not None:
        attrs["pos"] = [lon, lat]
        attrs["_geo"] = True
    return attrs


def _zoo_edge(attrs: dict[str, Any], field: str) -> dict[str, Any]:
    """LinkSpeedRaw, or LinkSpeed x LinkSpeedUnits -> bandwidth (bit/s) when none is given."""
    raw = attrs.pop("LinkSpeedRaw", None)
    speed, units = attrs.pop("LinkSpeed", None), attrs.pop("LinkSpeedUnits", None)
    if "bandwidth" in attrs:
        return attrs
    if raw is not None and _number(raw) is not None:
        attrs["bandwidth"] = _number(raw)
    elif speed is not None:
        unit = "" if units is None else str(units).strip().upper().removesuffix("BPS")
        if _number(speed) is None or unit not in _SPEED_UNITS:
            raise ProblemError(f"{field}.LinkSpeed", "must be a number with LinkSpeedUnits "
                               "one of K, M, G, T (Topology Zoo)", f"{speed} {units}")
        attrs["bandwidth"] = _number(speed) * _SPEED_UNITS[unit]  # type: ignore[operator]
    return attrs


def _zoo_ids(nodes: list[dict[str, Any]], links: list[dict[str, Any]]) -> None:
    """Labels as ids when the ids are bare numbers and every label is given and unique."""
    labels = [n.get("label") for n in nodes]
    numeric = all(isinstance(n["id"], str) and n["id"].strip().isdigit() for n in nodes)
    given = all(isinstance(x, str) and x.strip() for x in labels)
    if numeric and given and len({str(x).strip() for x in labels}) == len(nodes):
        rename = {n["id"]: str(n["label"]).strip() for n in nodes}
        for n in nodes:
            n["id"] = rename[n["id"]]
        for e in links:
            e["source"] = rename.get(e["source"], e["source"])
            e["target"] = rename.get(e["target"], e["target"])
    for n in nodes:
        n.pop("label", None)


def _geo_latencies(nodes: list[dict[str, Any]], links: list[dict[str, Any]]) -> None:
    """A link without latency between two geographic nodes: distance / FIBRE_SPEED."""
    where = {n["id"]: n["pos"] for n in nodes if n.get("_geo")}
    for e in links:
        if "latency" not in e and e["source"] in where and e["target"] in where:
            (x1, y1), (x2, y2) = where[e["source"]], where[e["target"]]
            e["latency"] = great_circle_m(x1, y1, x2, y2) / FIBRE_SPEED


def read_graphml(text: str, name: str, geo_latency: bool = False) -> dict[str, Any]:
    """Parse GraphML text into a SPEC ``network`` mapping (``nodes`` and ``links`` lists).

    Parameters
    ----------
    text : str
        The file's text.
    name : str
        The file's name, for error messages.
    geo_latency : bool
        Give a link without latency whose ends have Latitude/Longitude the great-circle
        distance over :data:`FIBRE_SPEED`.

    Raises
    ------
    ProblemError
        A DTD, XML that does not parse, a structure pipesl does not take (several graphs, a
        directed graph, hyperedges, nested graphs, parallel edges), a node without an id, an
        edge without ends, data for an undeclared key, or a value that does not convert.
    """
    if _DTD.search(text):
        raise ProblemError(name, "contains a document type declaration (<!DOCTYPE or "
                           "<!ENTITY); GraphML needs none and pipesl refuses them (entities "
                           "could expand without bound or read other files)")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ProblemError(name, f"is not valid GraphML: {exc}") from None
    if _local(root.tag) != "graphml":
        raise ProblemError(name, f"is not valid GraphML: the root element is "
                           f"<{_local(root.tag)}>, not <graphml>")
    keys: dict[str, tuple[str, str, str, str | None]] = {}
    for key in root:
        if _local(key.tag) != "key":
            continue
        key_id = key.get("id")
        if key_id is None:
            raise ProblemError(f"{name}: <key>", "has no id attribute")
        if key_id in keys:
            raise ProblemError(f"{name}: <key id={key_id!r}>", "is declared twice")
        default = next((d.text for d in key if _local(d.tag) == "default"), None)
        owner, attr = key.get("for", "all"), key.get("attr.name", "")
        known = {"node": _NODE_ATTRS, "edge": _EDGE_ATTRS}.get(owner, _NODE_ATTRS + _EDGE_ATTRS)
        rule = unknown_field_rule(attr, known, foreign=True)
        if rule is not None and owner in ("node", "edge", "all"):
            raise ProblemError(f"{name}: <key id={key_id!r} attr.name={attr!r}>", rule)
        keys[key_id] = (owner, attr, key.get("attr.type", "string"), default)
    graphs = [g for g in root if _local(g.tag) == "graph"]
    if len(graphs) != 1:
        raise ProblemError(name, f"holds {len(graphs)} <graph> elements; a network file "
                           "holds exactly one")
    graph = graphs[0]
    if graph.get("edgedefault", "undirected") != "undirected":
        raise ProblemError(name, "is a directed graph; links are undirected (bandwidth applies"
                           " to each direction)")

    def attributes(element: ET.Element, owner: str, wanted: tuple[str, ...],
                   field: str) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        for kfor, attr, kind, default in keys.values():
            if kfor in (owner, "all") and attr in wanted and default is not None:
                attrs[attr] = _convert(default, kind, f"{field}.{attr}")
        for data in element:
            tag = _local(data.tag)
            if tag == "graph":
                raise ProblemError(field, "holds a nested graph; pipesl reads flat graphs only")
            if tag != "data":
                continue
            key_id = data.get("key", "")
            if key_id not in keys:
                raise ProblemError(field, "has <data> for a key that no <key> declares", key_id)
            kfor, attr, kind, _ = keys[key_id]
            if kfor in (owner, "all") and attr in wanted:
                if len(data):
                    raise ProblemError(f"{field}.{attr}", "holds XML elements; the <data> of "
                                       "a SPEC attribute holds only its value")
                attrs[attr] = _convert(data.text, kind, f"{field}.{attr}")
        return attrs

    nodes: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    pairs: dict[frozenset[str], int] = {}
    for element in graph:
        tag = _local(element.tag)
        if tag == "hyperedge":
            raise ProblemError(name, "holds a <hyperedge>; a link joins exactly two nodes")
        if tag == "node":
            field = f"{name}: network.nodes[{len(nodes)}]"
            node = {"id": element.get("id")}
            node.update(_zoo_node(_coerce(attributes(element, "node", _NODE_ATTRS + _ZOO_NODE,
                                                     field))))
            nodes.append(node)
        elif tag == "edge":
            field = f"{name}: network.links[{len(links)}]"
            if element.get("directed", "false").strip().lower() in _TRUE:
                raise ProblemError(field, "is a directed edge; links are undirected (bandwidth"
                                   " applies to each direction)")
            u, v = element.get("source"), element.get("target")
            ends = frozenset((str(u), str(v)))
            if u is not None and v is not None and u != v and ends in pairs:
                raise ProblemError(field, f"joins {u!r} and {v!r} again (links[{pairs[ends]}]):"
                                   " the graph is a multigraph; give at most one link per pair"
                                   " of nodes")
            pairs[ends] = len(links)
            links.append({"source": u, "target": v, **_zoo_edge(
                attributes(element, "edge", _EDGE_ATTRS + _ZOO_EDGE, field), field)})
    _zoo_ids(nodes, links)
    if geo_latency:
        _geo_latencies(nodes, links)
    for n in nodes:
        n.pop("_geo", None)
    return {"nodes": nodes, "links": links}


def write_graphml(network: Mapping[str, Any], path: Path) -> None:
    """Write a SPEC network mapping (``network_to_dict``) as GraphML with the SPEC attribute
    names; links keep their order and orientation."""
    keys = [("node", "flops", "double"), ("node", "memory", "double"),
            ("node", "overhead", "double"), ("node", "compute", "boolean"),
            ("node", "kind", "string"), ("node", "x", "double"), ("node", "y", "double"),
            ("edge", "bandwidth", "double"), ("edge", "latency", "double"),
            ("edge", "duplex", "string")]
    root = ET.Element("graphml", xmlns=GRAPHML_NS)
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

    for d in network["nodes"]:
        element = ET.SubElement(graph, "node", id=d["id"])
        for attr, value in d.items():
            if attr == "pos":
                data(element, "x", value[0])
                data(element, "y", value[1])
            elif attr != "id":
                data(element, attr, value)
    for e in network["links"]:
        element = ET.SubElement(graph, "edge", source=e["source"], target=e["target"])
        for attr in ("bandwidth", "latency", "duplex"):
            data(element, attr, e[attr])
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
