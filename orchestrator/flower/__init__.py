"""LedgerLoRA inside Flower's Deployment Engine (SuperLink + one SuperNode per organisation).

- :mod:`orchestrator.flower.strategy`: :class:`LedgerFedAvg`, a Flower strategy for the
  ServerApp. Flower's messages only say *when* to act; the chain says *what*: the strategy opens
  each round on chain, the ClientApps train, seal, store and submit their CIDs from their own
  wallets, and the strategy closes the round and runs the aggregator daemon's own
  verify/merge-by-stacking/score/reward/finalize step on it.
- :mod:`orchestrator.flower.client`: ``train`` and ``settle`` helpers a ClientApp calls; they
  run the trainer daemon's own handlers on the chain's events.
- :mod:`orchestrator.flower.settings`: where a ServerApp or ClientApp finds its chain, manifest,
  store and keys (Flower run/node config, else the daemons' ``ORCH_*`` environment variables).

Nothing here imports flwr at module import time except ``strategy`` (it subclasses Flower's
FedAvg), so the ClientApp's start-up stays light; torch is imported only when training.
"""
