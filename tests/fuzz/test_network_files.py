"""Fuzz ``load_network``: SPEC network files, networkx node-link JSON, and GraphML.

SPEC and node-link files get the network mutations of ``mutate.py`` (the same predictions;
node-link files ignore unknown node and edge attributes, and name a misspelt top-level key on
its own). GraphML files are mutated as XML: DTDs and entities (billion laughs, XXE), broken
structure (ids, ends, parallel and directed edges, hyperedges, nested or missing graphs,
undeclared keys, truncation) and data values that do not convert or break a field's range.
"""

from __future__ import annotations

import copy
import difflib
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from harness import FUZZ, SLOW, Accept, Reject, judge
from hypothesis import given
from hypothesis import strategies as st
from mutate import (
    KNOWN,
    SCOPES,
    STEM,
    Path_,
    as_written,
    base_documents,
    baseline,
    dump,
    edit,
    mutate,
    quantity_outcome,
)

from pipesl.problem import load_network
from pipesl.problem.graphml import GRAPHML_NS, write_graphml

ET.register_namespace("", GRAPHML_NS)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("networks")


# ---------------------------------------------------------------- SPEC and node-link files


def node_link(network: dict[str, Any], edges_key: str) -> dict[str, Any]:
    doc: dict[str, Any] = {"directed": False, "multigraph": False, "graph": {}}
    for key, value in network.items():
        doc[{"links": edges_key}.get(key, key)] = value
    return doc


def as_node_link(expectation: Reject | Accept, base: Any, edges_key: str) -> Any:
    """A node-link file ignores extra node/edge attributes; a misspelt top-level key is named
    alone (it is the file's top level, not a ``network`` section); a number literal the file
    cannot hold is named where it stands in the file (``nodes[0]``, ``edges[2]``)."""
    if not isinstance(expectation, Reject):
        return expectation
    if expectation.rule == "is not a known field":
        parts = expectation.field.split(".")
        if len(parts) == 2:  # network.<key>
            return Reject(parts[1], "is not a known field")
        # A node/edge attribute that looks like a misspelt SPEC name is refused; others are
        # a foreign file's own attributes and ignored.
        owner = "node" if "nodes[" in expectation.field else "link"
        known = [k.lower() for k in KNOWN[owner]]
        if difflib.get_close_matches(parts[-1].lower(), known, n=1, cutoff=0.75):
            return Reject(expectation.field, "is not a known field; did you mean")
        return Accept(base)
    return as_written(expectation, "network", {"links": edges_key})


def run_network_case(cls: str, data: Any, folder: Path) -> None:
    doc = data.draw(base_documents(), label="base")
    base = baseline(doc)
    fmt = data.draw(st.sampled_from(["spec-json", "spec-yaml", "bare-yaml", "node-link"]),
                    label="format")
    expectation = mutate(cls, data.draw, doc, base, "network", "json" if "json" in fmt
                         or fmt == "node-link" else "yaml")
    if isinstance(expectation, Accept):
        expectation = Accept(expectation.expected.network)
    if fmt == "node-link":
        network = doc["network"] if isinstance(doc["network"], dict) else {}
        edges_key = data.draw(st.sampled_from(["edges", "links"]))
        expectation = as_node_link(expectation, base.network, edges_key)
        text = dump(node_link(network, edges_key), "json")
        path = folder / f"{STEM}.json"
    elif fmt == "bare-yaml":
        text, path = dump(doc["network"], "yaml"), folder / f"{STEM}.yml"
        expectation = as_written(expectation, "network")
    else:
        suffix = fmt.split("-")[1]
        text, path = dump({"network": doc["network"]}, suffix), folder / f"{STEM}.{suffix}"
    path.write_text(text, encoding="utf-8")
    judge(f"network: {cls}", lambda: load_network(path), str(path), expectation)


@pytest.mark.parametrize("cls", SCOPES["network"])
@FUZZ
@given(data=st.data())
def test_network_file_mutation(cls: str, folder: Path, data: Any) -> None:
    run_network_case(cls, data, folder)


@pytest.mark.slow
@pytest.mark.parametrize("cls", SCOPES["network"])
@SLOW
@given(data=st.data())
def test_network_file_mutation_long(cls: str, folder: Path, data: Any) -> None:
    run_network_case(cls, data, folder)


# ---------------------------------------------------------------- GraphML

NS = f"{{{GRAPHML_NS}}}"

BOMB = """<!DOCTYPE graphml [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
{levels}]>
"""


def _bomb(depth: int) -> str:
    levels = "".join(f' <!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">\n'
                     for i in range(depth))
    return BOMB.format(levels=levels)


DTDS = [
    _bomb(3), _bomb(9),
    '<!DOCTYPE graphml [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n',
    '<!DOCTYPE graphml [<!ENTITY x SYSTEM "http://127.0.0.1:9/x">]>\n',
    '<!DOCTYPE graphml [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>\n',
    '<!DOCTYPE graphml SYSTEM "http://127.0.0.1:9/graphml.dtd">\n',
    "<!DOCTYPE graphml>\n",
    '<!DOCTYPE graphml [<!ENTITY big "' + "x" * 50_000 + '">]>\n',
]


def graphml_text(network: Any, folder: Path) -> str:
    path = folder / "base.graphml"
    write_graphml(network, path)
    return path.read_text(encoding="utf-8")


def _key_ids(root: ET.Element) -> dict[str, tuple[str, str]]:
    return {k.get("attr.name", ""): (k.get("id", ""), k.get("attr.type", ""))
            for k in root.iter(f"{NS}key")}


def _data(element: ET.Element, key: str) -> ET.Element | None:
    return next((d for d in element.iter(f"{NS}data") if d.get("key") == key), None)


def graphml_structure(draw: Any, root: ET.Element, graph: ET.Element,
                      base: Any) -> Reject | Accept:
    nodes = graph.findall(f"{NS}node")
    edges = graph.findall(f"{NS}edge")
    kinds = ["node without id", "unknown edge end", "duplicate node", "self-loop edge",
             "edgedefault directed", "hyperedge", "nested graph", "two graphs", "no graph",
             "root", "undeclared key", "duplicate key", "edge without source",
             "data with elements"]
    if edges:
        kinds += ["parallel edge", "reversed parallel edge", "directed edge"]
    how = draw(st.sampled_from(kinds))
    i = draw(st.integers(0, len(nodes) - 1))
    if how == "node without id":
        del nodes[i].attrib["id"]
        return Reject(f"network.nodes[{i}].id", "is missing")
    if how == "data with elements":
        data = _data(nodes[i], _key_ids(root)["flops"][0])
        assert data is not None
        inner = data
        for _ in range(draw(st.integers(1, 300))):  # ET serialises recursively
            inner = ET.SubElement(inner, f"{NS}x")
        return Reject(f"network.nodes[{i}].flops", "holds XML elements")
    if how == "edge without source":
        ET.SubElement(graph, f"{NS}edge", target=nodes[i].get("id", ""))
        return Reject(f"network.links[{len(edges)}].source", "is missing")
    if how == "unknown edge end":
        edge = ET.SubElement(graph, f"{NS}edge", source=nodes[i].get("id", ""),
                             target="ghost-node")
        ET.SubElement(edge, f"{NS}data", key=_key_ids(root)["bandwidth"][0]).text = "1e9"
        return Reject(f"network.links[{len(edges)}].target", "is not the id of a node")
    if how == "duplicate node":
        graph.insert(len(nodes), copy.deepcopy(nodes[i]))
        return Reject(f"network.nodes[{len(nodes)}].id", f"is a duplicate id (also nodes[{i}])")
    if how == "self-loop edge":
        edge = ET.SubElement(graph, f"{NS}edge", source=nodes[i].get("id", ""),
                             target=nodes[i].get("id", ""))
        bandwidth = _key_ids(root)["bandwidth"][0]
        ET.SubElement(edge, f"{NS}data", key=bandwidth).text = "1e9"
        return Reject(f"network.links[{len(edges)}]", "is a self-loop")
    if how in ("parallel edge", "reversed parallel edge"):
        j = draw(st.integers(0, len(edges) - 1))
        dup = copy.deepcopy(edges[j])
        if how.startswith("reversed"):
            dup.set("source", edges[j].get("target", ""))
            dup.set("target", edges[j].get("source", ""))
        graph.append(dup)
        return Reject(f"network.links[{len(edges)}]", "is a multigraph")
    if how == "directed edge":
        j = draw(st.integers(0, len(edges) - 1))
        edges[j].set("directed", "true")
        return Reject(f"network.links[{j}]", "is a directed edge")
    if how == "edgedefault directed":
        graph.set("edgedefault", "directed")
        return Reject("", "is a directed graph")
    if how == "hyperedge":
        hyper = ET.SubElement(graph, f"{NS}hyperedge")
        ET.SubElement(hyper, f"{NS}endpoint", node=nodes[i].get("id", ""))
        return Reject("", "holds a <hyperedge>")
    if how == "nested graph":
        ET.SubElement(nodes[i], f"{NS}graph", edgedefault="undirected")
        return Reject(f"network.nodes[{i}]", "holds a nested graph")
    if how == "two graphs":
        root.append(copy.deepcopy(graph))
        return Reject("", "holds 2 <graph> elements")
    if how == "no graph":
        root.remove(graph)
        return Reject("", "holds 0 <graph> elements")
    if how == "root":
        root.tag = f"{NS}network"
        return Reject("", "the root element is <network>")
    if how == "undeclared key":
        ET.SubElement(nodes[i], f"{NS}data", key="no-such-key").text = "1"
        return Reject(f"network.nodes[{i}]", "has <data> for a key that no <key> declares")
    key = root.find(f"{NS}key")
    assert key is not None
    root.insert(0, copy.deepcopy(key))
    return Reject(f"<key id={key.get('id')!r}>", "is declared twice")


DOUBLE_TEXTS = ["abc", "", "1e400", "-1e400", "NaN", "-1", "inf", "-inf", "1e31", "0x10",
                "1,5", " 5 ", "2.5e3", "0", "-0", "7", "1e-40", "5e-324", "１２"]


def graphml_value(draw: Any, root: ET.Element, graph: ET.Element, base: Any
                  ) -> Reject | Accept:
    keys = _key_ids(root)
    nodes = graph.findall(f"{NS}node")
    edges = graph.findall(f"{NS}edge")
    owners = [("node", i, e) for i, e in enumerate(nodes)]
    owners += [("link", i, e) for i, e in enumerate(edges)]
    owner, i, element = draw(st.sampled_from(owners))
    names = (["flops", "memory", "overhead", "compute"] if owner == "node"
             else ["bandwidth", "latency"])
    name = draw(st.sampled_from(names))
    key_id, _ = keys[name]
    data = _data(element, key_id)
    if data is None:
        data = ET.SubElement(element, f"{NS}data", key=key_id)
    section = "nodes" if owner == "node" else "links"
    path: Path_ = ("network", section, i, name)
    field = f"network.{section}[{i}].{name}"
    if name == "compute":
        text = draw(st.sampled_from(["maybe", "yes", "1", "0", "TRUE", "False", ""]))
        data.text = text
        if text.lower() not in ("true", "false", "1", "0"):
            return Reject(field, "must be true or false (GraphML attr.type boolean)")
        value = text.lower() in ("true", "1")
        node = base.nodes[i]
        if value and node.flops == 0:
            return Reject(f"network.nodes[{i}].flops", "must be > 0 on a node with compute")
        return Accept(edit_network(base, path, value))
    text = draw(st.sampled_from(DOUBLE_TEXTS))
    data.text = text
    try:
        number = float(text)
    except ValueError:
        return Reject(field, "is not a number (GraphML attr.type double)")
    if math.isinf(number) and "inf" not in text.lower():
        return Reject(field, "is too large: beyond the range of a double")
    computes = owner == "node" and base.nodes[i].compute
    outcome = quantity_outcome(owner, name, number, computes, path)
    if isinstance(outcome, Reject):
        return outcome
    return Accept(edit_network(base, path, outcome))


def edit_network(base: Any, path: Path_, value: Any) -> Any:
    from pipesl.problem import Problem, TrainingSpec
    from pipesl.problem.types import ChainModel

    dummy = Problem(base, ChainModel("m", 0.0, ()), TrainingSpec("x", 1))
    return edit(dummy, path, value).network


def graphml_truncated(draw: Any, text: str) -> tuple[str, Reject | Accept | None]:
    cut = draw(st.integers(0, len(text) - 1))
    if text[:cut].rstrip() == text.rstrip():
        return text[:cut], None
    return text[:cut], Reject("", "is not valid GraphML")


GRAPHML_CLASSES = ("GraphML DTD/entities", "GraphML structure", "GraphML values",
                   "GraphML truncated")


def run_graphml_case(cls: str, data: Any, folder: Path) -> None:
    doc = data.draw(base_documents(), label="base")
    network = baseline(doc).network
    text = graphml_text({"nodes": doc["network"]["nodes"], "links": doc["network"]["links"]},
                        folder)
    expectation: Reject | Accept | None
    if cls == "GraphML DTD/entities":
        dtd = data.draw(st.sampled_from(DTDS))
        head, _, body = text.partition("?>")
        text = f"{head}?>\n{dtd}{body}" if body else dtd + text
        expectation = Reject("", "contains a document type declaration")
    elif cls == "GraphML truncated":
        text, expectation = graphml_truncated(data.draw, text)
        expectation = expectation or Accept(network)
    else:
        root = ET.fromstring(text)
        graph = root.find(f"{NS}graph")
        assert graph is not None
        make = graphml_structure if cls == "GraphML structure" else graphml_value
        expectation = make(data.draw, root, graph, network)
        text = ET.tostring(root, encoding="unicode")
    path = folder / f"{STEM}.graphml"
    path.write_text(text, encoding="utf-8")
    judge(cls, lambda: load_network(path), str(path), expectation)


@pytest.mark.parametrize("cls", GRAPHML_CLASSES)
@FUZZ
@given(data=st.data())
def test_graphml_mutation(cls: str, folder: Path, data: Any) -> None:
    run_graphml_case(cls, data, folder)


@pytest.mark.slow
@pytest.mark.parametrize("cls", GRAPHML_CLASSES)
@SLOW
@given(data=st.data())
def test_graphml_mutation_long(cls: str, folder: Path, data: Any) -> None:
    run_graphml_case(cls, data, folder)


def test_graphml_reads_foreign_files(folder: Path) -> None:
    """What networkx and yEd-like tools write still loads: keys for 'all', defaults, ports,
    extra attributes and graphics, comments, no namespace."""
    text = """<?xml version="1.0"?>
<!-- written by hand -->
<graphml xmlns="http://graphml.graphdrawing.org/xmlns" xmlns:y="http://www.yworks.com/xml">
  <key id="g" for="node" yfiles.type="nodegraphics"/>
  <key id="f" for="all" attr.name="flops" attr.type="double"><default>2e12</default></key>
  <key id="b" for="edge" attr.name="bandwidth" attr.type="string"/>
  <key id="l" for="node" attr.name="label" attr.type="string"/>
  <graph id="G" edgedefault="undirected">
    <node id="a"><data key="l">A</data><data key="g"><y:ShapeNode/></data><port name="p"/></node>
    <node id="b"><data key="f">1e12</data></node>
    <edge source="a" target="b" sourceport="p"><data key="b">100 Mbps</data></edge>
  </graph>
</graphml>"""
    path = folder / "foreign.graphml"
    path.write_text(text)
    net = load_network(path)
    assert [(n.id, n.flops) for n in net.nodes] == [("a", 2e12), ("b", 1e12)]
    assert net.links[0].bandwidth == 1e8
    bare = folder / "bare.graphml"
    bare.write_text(text.replace(' xmlns="http://graphml.graphdrawing.org/xmlns"', ""))
    assert load_network(bare) == net
