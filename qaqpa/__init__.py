"""The composition root: the ``qaqpa`` command, the one-machine demo, the embedded server's demo
wiring and the benchmark registry. It may import every package; nothing imports it."""
