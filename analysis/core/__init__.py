"""Layer 1 of bsmscan: what every other part needs and that needs nothing of the project.

- :mod:`analysis.core.config`     the validated analysis config (one section per module);
- :mod:`analysis.core.statistics` significance, threshold scans, effective sample sizes;
- :mod:`analysis.core.metrics`    ROC curves and AUCs, the binned KS distance;
- :mod:`analysis.core.store`      the feature-store format (one writer, one reader);
- :mod:`analysis.core.layout`     where each stage writes under a results folder;
- :mod:`analysis.core.names`      the one grid-point name;
- :mod:`analysis.core.fileset`    filesets: loading, inspection, event-count checks;
- :mod:`analysis.core.executors`, :mod:`analysis.core.condor`, :mod:`analysis.core.workers`
  where the columnar stages run (coffea executors, Dask and HTCondor clusters);
- :mod:`analysis.core.errors`     the base class of every error a user can act on;
- :mod:`analysis.core.cli`        shared command-line plumbing (config option, logging, exit codes);
- :mod:`analysis.core.provenance` versions, git state and device for the report.

Nothing here imports :mod:`processors`, :mod:`nn`, :mod:`jobs` or the higher parts of
:mod:`analysis`; ``tests/test_layers.py`` checks it.
"""
