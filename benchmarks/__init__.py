"""Speed benchmarks: `python -m benchmarks.run` (CPU or CUDA, against a naive reference loop) and
`python -m benchmarks.gpu` (the H200 figures of the speed issue). Not part of the installed package."""
