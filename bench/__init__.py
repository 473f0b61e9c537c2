"""Benchmarks (results in docs/BENCHMARKS.md). They, and the tests, read the real data in
``tests.support.shared.SHARED`` (../shared, or $FACEGEN_SHARED) and use the helpers of tests/support."""
