"""Shared transformer core: attention kernels, blocks, embeddings, KV cache, DiT, text encoder,
checkpoint I/O. Import the submodules (``studio.core.attention`` …) directly; this package file
stays empty of imports so ``studio --help`` does not pay for torch."""
