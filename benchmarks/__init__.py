"""Benchmark scripts of hgn_pyg (speed, memory and agreement; no training): run from the
repository root as ``python -m benchmarks.<name>`` (e.g. ``python -m benchmarks.sparse_vs_dense
--quick``), see ``benchmarks/README.md``.

Shared helpers: :mod:`benchmarks._common` (timing, peak memory, agreement checks, tables);
the graph-kernel benchmarks of :mod:`benchmarks.sparse_vs_dense` are split by benchmark
(:mod:`~benchmarks.semgraphconv`, :mod:`~benchmarks.gcn_aggregation`,
:mod:`~benchmarks.typed_batches`) over :mod:`~benchmarks.graph_kernels` (graphs, timing loop)
and :mod:`~benchmarks.graph_report` (tables, plot). Training experiments live in ``experiments/``.
"""
