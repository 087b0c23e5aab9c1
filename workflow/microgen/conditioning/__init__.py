"""Parameter-aware conditioning: normaliser, conditioner, placeholder tokens, SD3 encoding."""
