"""The OpenAI-compatible gateway: routing by model, canaries, shadows and the smoke test."""
