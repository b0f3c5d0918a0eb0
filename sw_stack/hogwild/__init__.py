"""Hogwild! Inference: parallel workers of one decoder over one shared, block-structured KV cache."""
