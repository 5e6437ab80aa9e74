"""Small random problems with several data owners, shared by the many-owner tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from pipesl.problem import Problem, problem_from_dict


def random_owners_problem(seed: int, owners: int = 2, layers: int = 3, batch: int = 3,
                          replicas: str = "per-owner", mode: str = "parallel",
                          schedule: str | None = None) -> Problem:
    """Owners d0.. on one relay r, two servers s1, s2 behind it (a tree, one route per pair
    except the s1-s2 link, which gives a second), random speeds and sizes."""
    rng = np.random.default_rng(seed)
    devs = [f"d{i}" for i in range(owners)]
    nodes: list[dict[str, Any]] = [
        {"id": d, "flops": float(rng.uniform(0.5e10, 3e10)),
         "memory": float(rng.choice([1e9, 2.5e5]))} for d in devs]
    nodes += [{"id": "r", "compute": False},
              {"id": "s1", "flops": float(rng.uniform(1e11, 4e11))},
              {"id": "s2", "flops": float(rng.uniform(1e11, 4e11))}]
    links = [{"source": d, "target": "r", "bandwidth": float(rng.uniform(2e7, 1e8)),
              "latency": float(rng.uniform(0, 2e-3))} for d in devs]
    links += [{"source": "r", "target": "s1", "bandwidth": float(rng.uniform(5e7, 3e8)),
               "duplex": str(rng.choice(["half", "full"]))},
              {"source": "s1", "target": "s2", "bandwidth": float(rng.uniform(5e7, 3e8))}]
    layer_docs = [{"name": f"l{i}", "fwd_flops": float(rng.uniform(2e7, 2e8)),
                   "out_bytes": float(rng.uniform(5e3, 6e4)),
                   "param_bytes": float(rng.uniform(1e3, 3e4))} for i in range(layers)]
    sources = [{"node": d, "batch_size": int(rng.integers(1, batch + 1)) if i else batch}
               for i, d in enumerate(devs)]
    if rng.random() < 0.3:
        sources[-1]["labels_at"] = devs[-1]
    doc = {"network": {"nodes": nodes, "links": links},
           "model": {"name": "m", "input_bytes": 4e3, "layers": layer_docs},
           "training": {"sources": sources, "owners": mode, "replicas": replicas,
                        "schedule": schedule or str(rng.choice(["gpipe", "1f1b"]))}}
    return problem_from_dict(doc)
