"""C4 (HPCA 2025): C4D communication-driven fault detection and localization for LLM-training clusters."""
