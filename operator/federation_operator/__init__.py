"""federation-operator: declarative bilateral federation between Ampora-style servers."""

__version__ = "0.1.0"
