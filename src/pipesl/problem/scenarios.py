"""Built-in scenarios, networks and model profiles shipped as data files (no torch needed).

``data/scenarios/*.yaml`` are whole problem files; ``data/networks/*`` SPEC network files or
GraphML; ``data/models/*.yaml`` model profiles. A scenario may name a built-in network or model
by its file stem. ``pipesl scenarios`` lists them with their one-line descriptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from pipesl.exceptions import ProblemError, _short

__all__ = [
    "DEFAULT_SCENARIO",
    "MODEL_ALIASES",
    "PROFILE_HINT",
    "BuiltinInfo",
    "builtin_names",
    "builtin_path",
    "list_builtins",
]

DATA_DIR = Path(__file__).parent / "data"
DEFAULT_SCENARIO = "edge-campus"
_DIRS = {"scenario": "scenarios", "network": "networks", "model": "models"}
_SUFFIXES = (".yaml", ".yml", ".json", ".graphml")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: `pipesl scenarios` is quick
MODEL_ALIASES = {
    "vgg11": "vgg11-imagenet", "vgg16": "vgg16-imagenet", "vgg19": "vgg19-imagenet",
    "resnet18": "resnet18-imagenet", "resnet50": "resnet50-imagenet",
    "mobilenetv2": "mobilenetv2-imagenet", "mobilenet_v2": "mobilenetv2-imagenet",
    "vit-b16": "vit-b16-imagenet", "vit_b_16": "vit-b16-imagenet", "gpt2": "gpt2-small",
    "mlp": "mlp-digits", "cnn": "cnn-digits",
}
"""The model zoo's aliases (``pipesl models``), so that a problem's ``model: resnet18`` names
the same shipped profile as ``resnet18-imagenet`` (a test keeps this equal to the zoo's)."""
PROFILE_HINT = ("every `pipesl models` name has a shipped profile; profile another model with "
                "`pipesl profile package.module:factory --out model.yaml` and give that file")


@dataclass(frozen=True)
class BuiltinInfo:
    """One built-in data file."""

    kind: str
    name: str
    path: Path
    description: str


def _files(kind: str) -> dict[str, Path]:
    folder = DATA_DIR / _DIRS[kind]
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix in _SUFFIXES}


def builtin_names(kind: str) -> list[str]:
    """Names of the built-ins of ``kind`` ('scenario', 'network' or 'model')."""
    return sorted(_files(kind))


def canonical_name(kind: str, name: str) -> str:
    """A built-in's own name: a zoo alias (``resnet18``) becomes its model's."""
    return MODEL_ALIASES.get(name, name) if kind == "model" else name


def builtin_path(kind: str, name: str) -> Path:
    """Path of a built-in; a ProblemError lists the valid names when ``name`` is unknown."""
    files = _files(kind)
    if canonical_name(kind, name) not in files:
        names = ", ".join(sorted(files)) or "none"
        hint = f"; {PROFILE_HINT}" if kind == "model" else ""
        raise ProblemError((name and _short(name, 300)) or "name",
                           f"is neither an existing file nor a built-in {kind} (built-in "
                           f"{_DIRS[kind]}: {names}){hint}")
    return files[canonical_name(kind, name)]


def _description(path: Path) -> str:
    if path.suffix == ".graphml":
        return "GraphML network"
    try:
        doc = yaml.load(path.read_text(), Loader=_LOADER)
    except yaml.YAMLError:  # pragma: no cover - shipped files are tested
        return ""
    if isinstance(doc, dict):
        for key in ("description", "name"):
            value = doc.get(key)
            if isinstance(value, str) and value:
                return " ".join(value.split())
            inner = doc.get("model") or doc.get("network")
            if isinstance(inner, dict) and isinstance(inner.get(key), str):
                return " ".join(str(inner[key]).split())
    return ""


def list_builtins(kind: str | None = None) -> list[BuiltinInfo]:
    """Every built-in (of one kind, or all) with its description."""
    kinds = [kind] if kind else list(_DIRS)
    return [BuiltinInfo(k, name, path, _description(path))
            for k in kinds for name, path in _files(k).items()]
