"""3D data layer: Cahn–Hilliard simulation, phase thresholding, microgen3D HDF5, splits.

Library only (no Snakemake imports); ``simulate.simulate_dataset`` is the stage function.
"""
