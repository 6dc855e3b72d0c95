"""LedgerLoRA orchestrator: chain, storage, learning and the daemons that wire them together.

Layers are importable on their own: ``orchestrator.chain`` and ``orchestrator.storage`` never
import torch; ``orchestrator.learning`` and ``orchestrator.split`` are the only places that do.
"""

__version__ = "0.1.0"
