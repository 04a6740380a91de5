"""pyrunc's benchmark: `python3 -m bench` from the repository root compares the installed
pyrunc with runc and crun on a busybox bundle and writes docs/BENCHMARKS.md.

Modules: `namespaces` (the private mount namespace the run happens in, and crun's own
view of the cgroup tree), `runtimes` (the three binaries and how each is invoked),
`measure` (the timed operations), `report` (machine description, table, markdown).
"""
