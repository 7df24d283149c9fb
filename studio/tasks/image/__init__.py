"""The image plugin: LiT text-to-image (a linear DiT inherited from a softmax DiT teacher and distilled)."""
