"""Examples and documentation helpers for `fastai_disclr`: the offline tasks of the demo, the docs and the benchmarks.

Not part of the library: `import fastai_disclr` never imports this package, and nothing here changes fastai for a
user's process. It ships beside the library (as finetuning-scheduler ships `fts_examples`) so that `make demo`, the
notebooks and `benchmarks/` share one copy of each task.
"""
