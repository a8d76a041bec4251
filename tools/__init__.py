"""Data makers for tests and benchmarks: not part of the installed package.

- `python -m tools.sample_maker`: regenerates the bundled sample (svit_dataset/sample/), which is installed.
- `python -m tools.synthetic DIR`: a release-format corpus at the paper's scale, for bench/ and tests.
"""
