"""`guardkit evaluate`: guards and LLM-judge baselines scored side by side on registered test suites."""
