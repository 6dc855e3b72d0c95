"""Everyday commands of an organisation and an operator (``org ...``, ``status``, dead letters).

Torch-free: every command here talks to the chain and the store only, so it starts fast.
"""
