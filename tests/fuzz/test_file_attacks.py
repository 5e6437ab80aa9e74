"""File-level attacks on every loader: YAML alias bombs and self-reference, deep nesting,
non-UTF-8 bytes, byte-order marks, binary garbage, huge files, truncated JSON, repeated keys,
YAML tags and several documents, and paths that are not files.

The loaders: a problem file, a SPEC network file, a node-link network, a GraphML network
(where the attack applies to XML), a model profile and a plan. Every case must end in a
one-line ProblemError naming the file (and the field, where the attack sits in one) -- or,
for a UTF-8 byte-order mark or a JSON file cut only in its trailing whitespace, load as the
original file does.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness import FUZZ, SLOW, Accept, Reject, judge
from hypothesis import given
from hypothesis import strategies as st
from mutate import Path_, dotted, dump, put, random_document

from pipesl.cost import evaluate, plan_document
from pipesl.plan import load_plan
from pipesl.problem import load_model, load_network, load_problem
from pipesl.problem.graphml import write_graphml
from strategies import random_plan, random_problem

# ---------------------------------------------------------------- the loaders and their files


def _document(seed: int, loader: str) -> tuple[Any, Callable[[Path], Any]]:
    """A valid document for ``loader`` (a mapping) and the call that loads its file."""
    if loader == "problem":
        return random_document(seed), load_problem
    if loader == "model":
        return {"description": "m", "model": random_document(seed)["model"]}, load_model
    r = random.Random(seed)
    problem = random_problem(r, n_nodes=r.randint(2, 6), n_layers=r.randint(1, 5))
    network = json.loads(json.dumps({"nodes": [vars_node(n) for n in problem.network.nodes],
                                     "links": [vars(e) for e in problem.network.links]}))
    if loader == "network":
        return {"network": network}, load_network
    if loader == "node-link":
        return ({"directed": False, "multigraph": False, "graph": {},
                 "nodes": network["nodes"], "edges": network["links"]}, load_network)
    plan = random_plan(r, problem)
    return (json.loads(json.dumps(plan_document(evaluate(problem, plan)))),
            lambda path: load_plan(path, problem))


def vars_node(node: Any) -> dict[str, Any]:
    out = {k: v for k, v in vars(node).items() if v is not None and v != ""}
    if out.get("memory") == float("inf"):
        del out["memory"]
    if "pos" in out:
        out["pos"] = list(out["pos"])
    return out


LOADERS = ("problem", "network", "node-link", "model", "plan")
SUFFIX = {"node-link": ".json"}


def write(folder: Path, name: str, data: bytes | str) -> Path:
    path = folder / name
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


def containers(doc: Any, path: Path_ = ()) -> list[Path_]:
    """Paths of every mapping and list in ``doc``."""
    out = [path] if isinstance(doc, dict | list) else []
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) \
        else []
    for key, value in items:
        out += containers(value, (*path, key))
    return out


def scalars(doc: Any, path: Path_ = ()) -> list[Path_]:
    """Paths of every scalar in ``doc``."""
    if isinstance(doc, dict):
        return [p for k, v in doc.items() for p in scalars(v, (*path, k))]
    if isinstance(doc, list):
        return [p for i, v in enumerate(doc) for p in scalars(v, (*path, i))]
    return [path]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("attacks")


# ---------------------------------------------------------------- attacks


def yaml_bomb(draw: Any, doc: Any) -> tuple[str, Reject]:
    """Billion laughs with anchors and aliases (10^7 to 10^9 values) written as the value of a
    field, or under a misspelt key, or as the whole document; or a list that holds itself."""
    depth = draw(st.integers(7, 9))
    width = draw(st.sampled_from([10, 12]))
    levels = ["&a0 [" + ", ".join(["lol"] * width) + "]"]
    levels += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, depth)]
    bomb = "[" + ", ".join(levels) + "]"
    place = draw(st.sampled_from(["field", "field", "unknown key", "document", "self"]))
    if place == "self":
        return "&r [*r]\n", Reject("", "contains itself")
    if place == "document":
        return bomb + "\n", Reject(None, "expands to")
    target: Path_ = (*draw(st.sampled_from(scalars(doc)))[:-1], "zz_bombs") \
        if place == "unknown key" else draw(st.sampled_from(scalars(doc)))
    if place == "unknown key" and not isinstance(_at(doc, target[:-1]), dict):
        target = ("zz_bombs",)
    put(doc, target, "BOMB")
    text = dump(doc, "yaml").replace("BOMB", bomb, 1)
    # named where the expansion crosses the limit: inside the field that holds the bomb
    return text, Reject(f"{dotted(target)}[{_first_over(width)}]", "expands to")


def _first_over(width: int) -> int:
    """Index of the first level of the bomb whose expansion exceeds MAX_VALUES (2 000 000)."""
    size, level = 1 + width, 0
    while size <= 2_000_000:
        size, level = 1 + width * size, level + 1
    return level


def deep_nesting(draw: Any, doc: Any, fmt: str) -> tuple[str, Reject]:
    """A field holding lists or mappings nested 65 to 100 000 levels deep (flow style)."""
    depth = draw(st.sampled_from([65, 100, 500, 999, 1000, 1001, 5000, 100_000]))
    kind = draw(st.sampled_from(["list", "map"]))
    opener, closer = ("[", "]") if kind == "list" else ('{"k": ', "}")
    nest = opener * depth + "1" + closer * depth
    target = draw(st.sampled_from(scalars(doc)))
    put(doc, target, "DEEP")
    text = dump(doc, fmt).replace('"DEEP"', nest, 1).replace("DEEP", nest, 1)
    return text, Reject(None, ("is nested too deeply", "exceeded maximum nesting depth"))


def non_utf8(draw: Any, data: bytes) -> tuple[bytes, Reject]:
    """Invalid UTF-8 sequences inserted, Latin-1 text, or UTF-16 with its byte-order mark."""
    how = draw(st.sampled_from(["insert", "insert", "latin-1", "utf-16"]))
    if how == "utf-16":
        return data.decode("utf-8").encode("utf-16"), Reject("", "is UTF-16 text")
    if how == "latin-1":
        return data + "# café\n".encode("latin-1"), Reject("", "is not UTF-8 text")
    bad = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xc0\xaf", b"\x80",
                                b"\xf8\x88\x80\x80\x80", b"\xe2\x82"]))
    at = draw(st.integers(0, len(data)))
    return data[:at] + bad + data[at:], Reject("", "is not UTF-8 text")


def garbage(draw: Any) -> tuple[bytes, Reject]:
    """Random bytes, sometimes behind a plausible first line."""
    body = draw(st.binary(min_size=0, max_size=2000))
    head = draw(st.sampled_from([b"", b"{", b"network:\n", b"<graphml>", b"\x00\x00"]))
    return head + body, Reject(None, "")


def truncated_json(draw: Any, text: str) -> tuple[str, Reject | None]:
    cut = draw(st.integers(0, len(text) - 1))
    try:
        json.loads(text[:cut])
    except ValueError:
        return text[:cut], Reject("", "is not valid JSON")
    return text[:cut], None


def repeated_key(draw: Any, doc: Any) -> tuple[str, Reject]:
    """A key given twice in one mapping (JSON keeps the last silently; pipesl refuses)."""
    maps = [p for p in containers(doc) if isinstance(_at(doc, p), dict) and _at(doc, p)]
    path = draw(st.sampled_from(maps))
    mapping = _at(doc, path)
    key = draw(st.sampled_from(sorted(mapping)))
    marker = "__REPEAT__"
    mapping[marker] = mapping[key]
    text = json.dumps(doc).replace(json.dumps(marker), json.dumps(key), 1)
    return text, Reject(dotted((*path, key)) if path else key, "is given twice")


def _at(doc: Any, path: Path_) -> Any:
    for part in path:
        doc = doc[part]
    return doc


YAML_TRICKS = [
    ("!!python/object/apply:os.system ['echo pwned']\n", Reject("", "is not valid YAML")),
    ("network: !!python/name:os.system\n", Reject("", "is not valid YAML")),
    ("a: 1\n---\nb: 2\n", Reject("", "is not valid YAML")),
    ("%YAML 1.1\n%YAML 1.1\n---\na: 1\n", Reject("", "is not valid YAML")),
    ("? [a, b]\n: 1\n", Reject("", "is not valid YAML")),
    ("a: *undefined\n", Reject("", "is not valid YAML")),
    ("a:\n\t- 1\n", Reject("", "is not valid YAML")),
    ("a: 'unterminated\n", Reject("", "is not valid YAML")),
    ("\x00\x01\x02", Reject("", "is not valid YAML")),
    ("", Reject("", "is empty; expected a mapping")),  # the file named, not "None must be"
    ("~\n", Reject("", "is empty; expected a mapping")),
    ("- 1\n- 2\n", Reject("", "must")),
    ("just a string\n", Reject("", "must")),
]

FILE_CLASSES = ("YAML bomb", "deep nesting", "non-UTF-8", "BOM", "binary garbage",
                "truncated JSON", "duplicate key")


def run_attack(cls: str, data: Any, folder: Path) -> None:
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    loader = data.draw(st.sampled_from(LOADERS), label="loader")
    doc, call = _document(seed, loader)
    fmt = "json" if loader in ("node-link", "plan") else data.draw(
        st.sampled_from(["json", "yaml"]), label="format")
    suffix = SUFFIX.get(loader, "." + fmt)
    expectation: Reject | Accept
    if cls == "YAML bomb":
        text, expectation = yaml_bomb(data.draw, doc)
        suffix = ".yaml"
        payload: bytes | str = text
    elif cls == "deep nesting":
        payload, expectation = deep_nesting(data.draw, doc, fmt)
    elif cls == "non-UTF-8":
        payload, expectation = non_utf8(data.draw, dump(doc, fmt).encode("utf-8"))
    elif cls == "BOM":
        original = write(folder, f"original{suffix}", dump(doc, fmt))
        payload = b"\xef\xbb\xbf" + dump(doc, fmt).encode("utf-8")
        expectation = Accept(call(original))
    elif cls == "binary garbage":
        payload, expectation = garbage(data.draw)
    elif cls == "truncated JSON":
        suffix = ".json" if loader != "node-link" else suffix
        text = dump(doc, "json")
        payload, cut = truncated_json(data.draw, text)
        if cut is None:
            original = write(folder, f"original{suffix}", text)
            expectation = Accept(call(original))
        else:
            expectation = cut
    else:
        payload, expectation = repeated_key(data.draw, doc)
    path = write(folder, f"attack{suffix}", payload)
    judge(cls, lambda: call(path), str(path), expectation)


@pytest.mark.parametrize("cls", FILE_CLASSES)
@FUZZ
@given(data=st.data())
def test_file_attack(cls: str, folder: Path, data: Any) -> None:
    run_attack(cls, data, folder)


@pytest.mark.slow
@pytest.mark.parametrize("cls", FILE_CLASSES)
@SLOW
@given(data=st.data())
def test_file_attack_long(cls: str, folder: Path, data: Any) -> None:
    run_attack(cls, data, folder)


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize(("text", "expectation"), YAML_TRICKS)
def test_yaml_tags_and_documents(folder: Path, loader: str, text: str,
                                 expectation: Reject) -> None:
    _, call = _document(0, loader)
    path = write(folder, f"tricks-{loader}.yaml", text)
    judge("YAML tags, documents, syntax", lambda: call(path), str(path), expectation)


@pytest.mark.parametrize("loader", [*LOADERS, "graphml"])
def test_huge_files(folder: Path, loader: str) -> None:
    """A file over the limit is refused before it is read (sparse: no disk used), and a
    device that never ends is read no further than the limit."""
    call = load_network if loader == "graphml" else _document(0, loader)[1]
    suffix = {"graphml": ".graphml"}.get(loader, SUFFIX.get(loader, ".json"))
    for size in (64 * 2**20 + 1, 2**40):
        path = folder / f"huge-{loader}{suffix}"
        with path.open("wb") as stream:
            stream.write(b'{"network": ')
            stream.truncate(size)
        judge("huge file", lambda p=path: call(p), str(path), Reject("", "is larger than"))
        path.unlink()
    yaml_path = folder / f"huge-{loader}.yaml"
    with yaml_path.open("wb") as stream:
        stream.truncate(8 * 2**20 + 1)
    if loader != "graphml":
        judge("huge file", lambda: call(yaml_path), str(yaml_path),
              Reject("", "is larger than 8388608 bytes"))
    zero = folder / f"zero-{loader}{suffix}"
    if not zero.exists():
        os.symlink("/dev/zero", zero)
    judge("huge file", lambda: call(zero), str(zero), Reject("", "is larger than"))


def test_paths_that_are_not_files(folder: Path) -> None:
    """A directory, a missing file, a name the OS refuses, a symlink loop, and a problem whose
    network names such a path."""
    loop = folder / "loop.yaml"
    if not loop.is_symlink():
        os.symlink(loop, loop)
    cases: list[tuple[Callable[[], Any], str, Reject]] = [
        (lambda: load_problem(folder), str(folder), Reject("", "is a directory")),
        (lambda: load_network(folder / "none.graphml"), repr(str(folder / "none.graphml")),
         Reject("", "is neither an existing file nor a built-in network")),
        (lambda: load_model("x" * 300), repr("x" * 300)[:297] + "...",
         Reject("", "is neither an existing file nor a built-in model")),
        (lambda: load_problem(loop), repr(str(loop)),
         Reject("", "is neither an existing file nor a built-in scenario")),
    ]
    for call, where, expectation in cases:
        judge("paths", call, where, expectation)
    doc = random_document(1)
    for value, rule in (("x" * 300, "is neither a file nor a built-in network"),
                        ("a\x00b", "is neither a file nor a built-in network"),
                        ("", "is neither a file nor a built-in network"),
                        (".", "is neither a file nor a built-in network"),
                        ("loop.yaml", "is neither a file nor a built-in network")):
        doc["network"] = value
        path = write(folder, "refers.json", json.dumps(doc))
        judge("paths", lambda p=path: load_problem(p), str(path), Reject("network", rule))


def test_graphml_file_attacks(folder: Path) -> None:
    """GraphML through the same file-level attacks: non-UTF-8, BOM, garbage, truncation."""
    problem = random_problem(random.Random(3), n_nodes=4)
    doc = {"nodes": [vars_node(n) for n in problem.network.nodes],
           "links": [vars(e) for e in problem.network.links]}
    base = folder / "base.graphml"
    write_graphml(doc, base)
    text = base.read_bytes()
    expected = load_network(base)
    rng = random.Random(0)
    cases: list[tuple[str, bytes, Reject | Accept]] = [
        ("BOM", b"\xef\xbb\xbf" + text, Accept(expected)),
        ("non-UTF-8", text.replace(b"<graph ", b"<graph \xff", 1),
         Reject("", "is not UTF-8 text")),
        ("non-UTF-8", text.decode().encode("utf-16"), Reject("", "is UTF-16 text")),
    ]
    for _ in range(10):
        cases.append(("binary garbage", bytes(rng.randrange(256) for _ in range(300)),
                      Reject(None, "")))
    for cls, payload, expectation in cases:
        path = write(folder, "attack.graphml", payload)
        judge(cls, lambda p=path: load_network(p), str(path), expectation)
