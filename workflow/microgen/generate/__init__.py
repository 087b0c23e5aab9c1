"""From-scratch generative baselines (conditional DDPM, stylegan-lite) and the samples contract."""
