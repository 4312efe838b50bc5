"""The client side: a network session, input parsing, rendering, and the two programs built
on them (``chat join`` and ``chat send``)."""
