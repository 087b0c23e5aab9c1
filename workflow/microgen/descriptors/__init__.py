"""Descriptors of segmented microstructures: particles, spatial correlations, 3D graphs.

One function per metric, arrays in and small frozen dataclasses out; no I/O except in
:mod:`microgen.descriptors.tables`.
"""

from .correlations import (
    LinealPathCurve,
    S2Curve,
    curve_error,
    envelope,
    lineal_path,
    two_point_correlation,
)
from .particles import SPHEROIDITE, ParticleDescriptors, particle_descriptors
from .volumes import GraspiDescriptors, graspi_descriptors, to_graspi_text

__all__ = [
    "GraspiDescriptors",
    "LinealPathCurve",
    "ParticleDescriptors",
    "S2Curve",
    "SPHEROIDITE",
    "curve_error",
    "envelope",
    "graspi_descriptors",
    "lineal_path",
    "particle_descriptors",
    "to_graspi_text",
    "two_point_correlation",
]
