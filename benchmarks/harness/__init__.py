"""What the benchmark (``bench.py``), the soak (``soak.py``), ``adversary.py`` and
``startup.py`` share: starting chatcli and its peers on loopback (``servers``), measuring
processes from /proc (``measure``, ``machine``), driving many clients (``loadgen``),
timing ``chat send`` (``sendtime``), and the benchmark's scenarios, tables and profiles
(``scenarios``, ``report``, ``profiling``).

The scripts put ``benchmarks/`` on ``sys.path`` and import ``harness.<module>``; inside the
package the imports are relative, and no module here imports a script or the soak's parts
(``soaklib``): ``tests/test_benchmarks_smoke.py`` checks that the graph has no cycle.
"""
