"""Speed and memory benchmarks of RadAssist's pipelines; results are recorded in benchmarks/RESULTS.md.

Run ``python -m benchmarks.run`` from the project root. Timings are never asserted in unit tests: they are
measured here, in fresh processes, and written down with the machine and the versions they came from.
"""
