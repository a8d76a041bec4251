"""Fuzz families of the new surfaces (bench/fuzz.py runs them): one module per surface, each with
`run(rng, n, tally, work)` classing every case through a shared `Tally`."""
