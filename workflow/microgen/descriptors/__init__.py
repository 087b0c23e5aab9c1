"""Descriptors of segmented microstructures: particles, spatial correlations, 3D graphs."""
