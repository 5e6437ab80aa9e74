"""Scenario generators and the evaluation's experiments (tidy rows -> CSV / markdown).

* :mod:`~pipesl.experiments.generators` — seeded edge networks, chain models, problems;
* :mod:`~pipesl.experiments.config` — experiment configs (frozen dataclasses, YAML);
* :mod:`~pipesl.experiments.instances` — seeded instances from an ``InstanceConfig``;
* :mod:`~pipesl.experiments.sweeps`, :mod:`~pipesl.experiments.microbatch`,
  :mod:`~pipesl.experiments.robustness`, :mod:`~pipesl.experiments.timing` — the experiments;
* :mod:`~pipesl.experiments.adaptation` — training in emulation through network changes
  (static vs adapted vs the new optimum; needs torch, run by name, not by ``all``);
* :mod:`~pipesl.experiments.runner` — rows, ratios, summaries, CSV and markdown;
* :mod:`~pipesl.experiments.suite` — names, default configs, ``run_experiment``.

Figures are drawn by :mod:`pipesl.plotting.experiments`; ``pipesl experiment`` runs it all.
"""
