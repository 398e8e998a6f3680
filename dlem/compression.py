"""How a shard's variables are compressed on disk: the named choices, declared once.

``COMPRESSIONS`` maps each name that ``python -m dlem simulate --compression`` accepts to the
HDF5 filters (netCDF4 ``createVariable`` / xarray encoding keywords) of every data variable
of the shard. All are lossless and built into HDF5, so any netCDF4 reader opens every choice
and reads the same bits; they trade CPU time (zlib on each 1.3 MB wavefield costs about a
third of simulating it on the default lattice, docs/cluster.md) against disk. ``shuffle``
regroups the bytes of the float32 values before zlib (better ratio, little CPU).
``encode_chunk`` applies a choice's filters in Python, so that the simulation workers
compress their own wavefields and the writer stores the bytes as they are.
``bench/scale.py`` measures MB per sample and samples/s at 1 and 2 workers for each choice.
"""

from __future__ import annotations

import zlib

import numpy as np

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


def encode_chunk(chunk: np.ndarray, name: str) -> bytes:
    """The bytes HDF5 stores for ``chunk`` (one whole chunk of a variable) under compression
    ``name``: its little-endian values in C order, byte-shuffled if ``shuffle`` (byte j of
    every value together, j = 0, 1, ...), then a zlib stream at ``complevel`` if ``zlib``:
    HDF5's filter pipeline in its order. Written with ``write_direct_chunk`` (h5py), such a
    chunk reads back as ``chunk`` in any HDF5 or netCDF4 reader."""
    f = filters(name)
    values = np.ascontiguousarray(chunk, dtype=chunk.dtype.newbyteorder("<"))
    data = values.view(np.uint8)
    if f["shuffle"]:
        data = data.reshape(-1, values.dtype.itemsize).T
    data = data.tobytes()
    return zlib.compress(data, f["complevel"]) if f["zlib"] else data
