"""Split learning (FL-GLM): the client keeps the input and output blocks, the server the middle.

Modules: ``model`` (cutting a Llama causal LM, masks, LoRA), ``crypto`` (per-client X25519 +
HKDF + AES-GCM sessions with replay protection), ``wire`` (safetensors payloads), ``batching``
(client-batching maths), ``server`` / ``client`` (the loopback HTTP protocol), ``runner``
(whole runs across processes), ``equivalence`` (fp32 checks), ``cli`` (``split-train``).
See docs/SPLIT.md. Submodules import torch; this package file does not.
"""
