"""How a shard's variables are compressed on disk: the named choices, declared once.

``COMPRESSIONS`` maps each name that ``python -m dlem simulate --compression`` accepts to the
HDF5 filters (netCDF4 ``createVariable`` / xarray encoding keywords) of every data variable
of the shard. All are lossless and built into HDF5, so any netCDF4 reader opens every choice
and reads the same bits; they trade the writer's CPU time (zlib on each 1.3 MB wavefield
costs about as much as simulating it on the default lattice, docs/cluster.md) against disk.
``shuffle`` regroups the bytes of the float32 values before zlib (better ratio, little CPU).
``bench/scale.py`` measures MB per sample and samples/s at 1 and 2 workers for each choice.
"""

from __future__ import annotations

COMPRESSIONS = {
    "zlib4-shuffle": {"zlib": True, "complevel": 4, "shuffle": True},
    "zlib1-shuffle": {"zlib": True, "complevel": 1, "shuffle": True},
    "zlib4": {"zlib": True, "complevel": 4, "shuffle": False},
    "zlib1": {"zlib": True, "complevel": 1, "shuffle": False},
    "none": {"zlib": False, "shuffle": False},
}
DEFAULT_COMPRESSION = "zlib1-shuffle"  # measured (docs/cluster.md): the best 2-worker rate
# within 2.3 % of the smallest files; shards written before 2026-12 used zlib4-shuffle


def filters(name: str) -> dict:
    """The filter keywords of compression ``name``; ValueError naming the choices if unknown."""
    if name not in COMPRESSIONS:
        raise ValueError(f"unknown compression {name!r}; choose one of {', '.join(COMPRESSIONS)}")
    return dict(COMPRESSIONS[name])
