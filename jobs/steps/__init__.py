"""The batch steps of ``python -m jobs.batch``, one module per group of steps.

:mod:`jobs.batch` imports only the module of the step a node runs, so a generation node (most
nodes of a run) starts without importing the network, likelihood and plotting packages the later
steps need (``import jobs.batch`` with every step took 7.3 s on a 2-core machine, the
generation modules alone 2.2 s):

- :mod:`jobs.steps.common`: the paths, the error type and the chunk loop they share;
- :mod:`jobs.steps.generation`: ``generate``, ``merge-samples``;
- :mod:`jobs.steps.selection`: ``plan``, ``process``, ``merge-process``;
- :mod:`jobs.steps.results`: ``train``, ``score``, ``merge-score``, ``scan``, ``fit``, ``report``.
"""
