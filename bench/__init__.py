"""Benchmarks that print figures. Run: ./dev bench (or python -m bench --help)."""
