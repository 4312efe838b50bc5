"""chatcli: a self-hosted terminal chat that speaks IRC."""

__version__ = "0.1.0"
