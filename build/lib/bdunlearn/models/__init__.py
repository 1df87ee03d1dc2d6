"""CLIP models: open_clip construction, the project's own architectures, zero-shot heads, checkpoints."""
