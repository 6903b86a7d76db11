"""authgate's benchmark suite (``make bench`` → ``python -m bench``).

A real ``authgate serve`` (one worker, pinned to one core) driven by wrk pinned to the other core,
with one Lua script per workload (bench/lua/). Results go to stdout as a table and to
bench/results/<timestamp>.json (+ latest.json). docs/performance.md explains the workloads and
records the figures.
"""
