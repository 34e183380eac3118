"""`guardkit generate`: synthetic, self-reflected guardrail data from plain-language policies.

config.GenerateConfig and pipeline.generate are the entry points; backends/ holds the generator registry.
"""
