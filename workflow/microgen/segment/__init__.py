"""Segmentation of real and generated micrographs: U-Net + ECA (Phan et al. 2025, §2.4)."""
