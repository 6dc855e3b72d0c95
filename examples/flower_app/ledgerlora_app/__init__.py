"""A Flower app that fine-tunes LoRA adapters, with LedgerLoRA's ledger (``ledger = true``) or without."""
