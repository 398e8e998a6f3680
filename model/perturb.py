"""Perturbed sensor data for robustness scoring: what a noisy or partly failed sensor array
would deliver, applied to the raw wavefield before any conditioning (the pristine reference,
a simulation, stays clean).

Wavefields are `(N, time, sensor, component)` float32 displacements [m], given with their
global sample indices `(N,)`; every random draw is seeded by `(seed or draw, sample index)`,
so a sample is perturbed the same way whatever batch, order or process reads it.

- Noise at `snr_db` [dB]: each trace `u(t)` (one sensor, one component) gets
  `u + sigma * n(t)` with `n` i.i.d. standard normal and `sigma = rms(u) * 10**(-snr_db / 20)`,
  `rms(u) = sqrt(mean_t u(t)**2)`: the trace's power over the noise's is `snr_db` in dB
  (`10 log10(mean u**2 / sigma**2)`). An all-zero trace stays zero. Seeded by `seed`.
- `dead_sensors = k`: k distinct sensors, drawn uniformly for each sample (seeded by `draw`),
  record zero on every component. With noise too, the noise is added first: a dead channel
  delivers nothing.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from model.io import DataError

NOISE_STREAM, DEAD_STREAM = 0, 1  # first SeedSequence entry: the two draws never share a stream
KEYS = ("snr_db", "seed", "dead_sensors", "draw")


def _rng(stream: int, seed: int, sample: int) -> np.random.Generator:
    return np.random.default_rng([stream, int(seed), int(sample)])


def add_noise(fields: np.ndarray, samples: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """`fields` `(N, time, sensor, component)` [m] plus white Gaussian noise whose standard
    deviation is each trace's RMS over time times `10**(-snr_db / 20)` (module docstring);
    `samples` `(N,)` are the global sample indices that seed each sample's noise. Returns a
    new float32 array."""
    fields = np.asarray(fields)
    rms = np.sqrt(np.mean(np.square(fields, dtype=np.float64), axis=1, keepdims=True))
    sigma = rms * 10.0 ** (-float(snr_db) / 20.0)                     # (N, 1, sensor, component)
    noise = np.stack([_rng(NOISE_STREAM, seed, s).standard_normal(fields.shape[1:])
                      for s in np.asarray(samples)])
    return (fields + sigma * noise).astype(np.float32)


def dead_sensor_choice(n_sensors: int, k: int, samples: np.ndarray, draw: int = 0) -> np.ndarray:
    """The `(N, k)` sensor indices that are dead in each sample: k distinct of `n_sensors`,
    uniformly, seeded by `(draw, sample)`. DataError when `k` is not in `[0, n_sensors]`."""
    check_dead_sensors(k, n_sensors)
    return np.array([_rng(DEAD_STREAM, draw, s).choice(n_sensors, size=k, replace=False)
                     for s in np.asarray(samples)], dtype=np.int64).reshape(len(samples), k)


def kill_sensors(fields: np.ndarray, samples: np.ndarray, k: int, draw: int = 0) -> np.ndarray:
    """`fields` `(N, time, sensor, component)` [m] with `k` sensors of each sample (those of
    `dead_sensor_choice`) zeroed on every component; a new float32 array."""
    out = np.array(fields, dtype=np.float32)
    dead = dead_sensor_choice(out.shape[2], k, samples, draw)
    out[np.arange(len(out))[:, None], :, dead, :] = 0.0  # (N, k) sensors -> (N, k, time, component)
    return out


def check_dead_sensors(k: int, n_sensors: int) -> None:
    """DataError unless `0 <= k <= n_sensors`."""
    if not 0 <= k <= n_sensors:
        raise DataError(f"dead_sensors = {k} is not possible with {n_sensors} sensors "
                        f"(0 to {n_sensors})")


@dataclass(frozen=True)
class Perturbation:
    """Noise at `snr_db` [dB] (None: none) seeded by `seed`, then `dead_sensors` dead sensors
    per sample seeded by `draw`. Calling it perturbs `(fields, samples)` as the module says."""

    snr_db: float | None = None
    seed: int = 0
    dead_sensors: int = 0
    draw: int = 0

    def __call__(self, fields: np.ndarray, samples: np.ndarray) -> np.ndarray:
        if self.snr_db is not None:
            fields = add_noise(fields, samples, self.snr_db, self.seed)
        if self.dead_sensors:
            fields = kill_sensors(fields, samples, self.dead_sensors, self.draw)
        return np.asarray(fields, dtype=np.float32)

    def check(self, wave_shape: tuple[int, int, int]) -> None:
        """DataError, before any work, when it cannot apply to wavefields of `wave_shape`
        `(time, sensor, component)` (more dead sensors than sensors)."""
        check_dead_sensors(self.dead_sensors, wave_shape[1])

    def as_dict(self) -> dict:
        """The keys that were set, as in `--perturb` (metrics.json's `perturbation`)."""
        given = {}
        if self.snr_db is not None:
            given.update(snr_db=self.snr_db, seed=self.seed)
        if self.dead_sensors or self.snr_db is None:
            given.update(dead_sensors=self.dead_sensors, draw=self.draw)
        return given


def parse_perturbation(text: str, option: str = "--perturb") -> Perturbation:
    """The Perturbation of a JSON object such as `{"snr_db": 20, "seed": 0}` or
    `{"dead_sensors": 5, "draw": 1}`; DataError naming `option` and what is wrong."""
    try:
        given = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{option} is not valid JSON: {err}") from err
    if not isinstance(given, dict) or not given:
        raise DataError(f"{option} must be a non-empty JSON object with keys among {KEYS}, "
                        f"got {text!r}")
    unknown = sorted(set(given) - set(KEYS))
    if unknown:
        raise DataError(f"{option}: unknown key(s) {unknown}; the keys are {list(KEYS)}")
    if "snr_db" not in given and "dead_sensors" not in given:
        raise DataError(f"{option} needs snr_db (noise) or dead_sensors, got {text!r}")
    snr = given.get("snr_db")
    if snr is not None and (isinstance(snr, bool) or not isinstance(snr, (int, float))
                            or not math.isfinite(snr)):
        raise DataError(f"{option}: snr_db must be a finite number [dB], got {snr!r}")
    for key in ("seed", "dead_sensors", "draw"):
        value = given.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise DataError(f"{option}: {key} must be an integer >= 0, got {value!r}")
    return Perturbation(snr_db=None if snr is None else float(snr), seed=given.get("seed", 0),
                        dead_sensors=given.get("dead_sensors", 0), draw=given.get("draw", 0))
