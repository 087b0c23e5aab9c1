"""Parameter-aware SD3 generation: tiny offline base, LoRA fine-tuning, sampling."""
