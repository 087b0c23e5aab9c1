"""Generation: parameter-aware SD3 (tiny offline base, LoRA fine-tuning, sampling), the
from-scratch baselines (conditional DDPM, stylegan-lite) and the samples contract."""
