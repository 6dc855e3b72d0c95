"""Incentives: Q-learning participation agents and the contribution values they are paid by.

Pure and seeded: no torch import and no I/O in the maths (``policy`` is the one module that
reads and writes a file, the agent's persisted Q-table). ``simulation`` is the economic
simulation behind ``python -m orchestrator incentives``.
"""
