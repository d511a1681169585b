"""The fuzzing campaign of the reference (fuzz/README.md): one module per target, a seed-corpus
builder over the conformance vectors, and a driver. Not part of the package and not run by CI;
the inputs that ever failed are replayed by tests/test_fuzz_regressions.py."""
