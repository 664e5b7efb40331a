"""The benchmark harness of issue 7: data at three sizes, wrk load, the floor, the peer, the report.

Run it with `python benchmarks/run.py --help`; docs/benchmarks.md explains the columns.
"""
