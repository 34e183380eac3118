"""guardkit: turn a guardrail policy written in plain language into a small, fast classifier on the Hub."""

__version__ = "0.1.0"
