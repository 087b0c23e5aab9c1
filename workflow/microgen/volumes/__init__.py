"""3D branch: data layer and latent diffusion model (MicroGen3D reproduction).

Data: Cahn–Hilliard simulation (``cahn_hilliard``, ``simulate``), phase thresholding
(``phases``), microgen3D HDF5 (``hdf5``), run-grouped splits (``splits``).
Model: networks (``models``), schedules/samplers/pipeline (``diffusion``), the three
training stages (``train``), generation + GraSPI measurement + scores (``evaluate``).

Library only (no Snakemake imports); ``simulate.simulate_dataset`` and the ``train_*`` /
``evaluate`` functions are the stage functions.
"""
