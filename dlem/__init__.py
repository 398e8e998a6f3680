"""dlem: a numba-accelerated 2D dynamic lattice element solver for elastic waves in cracked plates."""

__version__ = "0.1.0"
