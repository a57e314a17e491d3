"""compaudit's benchmark suite; run it with ``python -m benchmarks`` (see README.md).

Each ``bench_<name>.py`` module exposes ``run(quick: bool = False) -> list[dict]``
returning rows built by :func:`benchmarks.common.row`.
"""
