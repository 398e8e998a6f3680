"""Training-time augmentation: noise and dead sensors drawn anew for every training sample in
every epoch, so that a network learns from the kind of data it is scored on in
docs/robustness.md.

The perturbations are model/perturb.py's (noise at an SNR relative to each trace's RMS, then
k sensors zeroed), applied to the raw wavefield `(N, time, sensor, component)` [m] before any
conditioning, as a noisy or partly failed array would deliver it; only the training set is
augmented, never validation or test. For each sample and epoch one generator seeded by
`(AUGMENT_STREAM, seed, epoch, sample)` draws

- the SNR [dB]: uniform in `[low, high]` for `snr_db = (low, high)`, or `snr_db = (S,)` fixed;
  no noise for `snr_db = ()`;
- the number of dead sensors k: uniform in `0 .. dead_sensors` (inclusive);
- the seed of model/perturb.py's noise and dead-sensor draws,

so a run is reproducible and resumable (the draw depends on neither batch nor process nor
the torch RNG), a sample sees other noise in every epoch, and two seeds augment differently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from model.perturb import Perturbation, check_dead_sensors

AUGMENT_STREAM = 2  # first SeedSequence entry; model/perturb.py uses 0 (noise) and 1 (dead)


@dataclass(frozen=True)
class Augmentation:
    """Noise at an SNR drawn from `snr_db` [dB] (`()`: none, `(S,)`: S, `(low, high)`:
    uniform), then 0 to `dead_sensors` dead sensors, drawn per sample and epoch from `seed`
    (module docstring). `check` refuses bad values in one line."""

    snr_db: tuple[float, ...] = ()
    dead_sensors: int = 0
    seed: int = 0

    def check(self, n_sensors: int | None = None) -> None:
        """ValueError naming the bad option: `snr_db` of more than two or non-finite values or
        with low > high, `dead_sensors` < 0 or (with `n_sensors`) above the sensor count."""
        if len(self.snr_db) > 2 or not all(isinstance(s, (int, float)) and not isinstance(s, bool)
                                           and math.isfinite(s) for s in self.snr_db):
            raise ValueError(f"augment_snr_db must be [] (off), [S] or [low, high] in finite dB, "
                             f"got {list(self.snr_db)}")
        if len(self.snr_db) == 2 and self.snr_db[0] > self.snr_db[1]:
            raise ValueError(f"augment_snr_db [low, high] needs low <= high, got "
                             f"{list(self.snr_db)}")
        if isinstance(self.dead_sensors, bool) or not isinstance(self.dead_sensors, int) \
                or self.dead_sensors < 0:
            raise ValueError(f"augment_dead_sensors must be an integer >= 0, got "
                             f"{self.dead_sensors!r}")
        if n_sensors is not None:
            try:
                check_dead_sensors(self.dead_sensors, n_sensors)
            except ValueError as err:  # DataError: one message for the option
                raise ValueError(f"augment_dead_sensors: {err}") from err

    @property
    def active(self) -> bool:
        """Whether it changes anything (noise or at least one possible dead sensor)."""
        return bool(self.snr_db) or self.dead_sensors > 0

    def draw(self, epoch: int, sample: int) -> Perturbation:
        """The Perturbation of global `sample` in `epoch` (0-based): SNR [dB] or None, number
        of dead sensors, and the seeds of their draws."""
        rng = np.random.default_rng([AUGMENT_STREAM, int(self.seed), int(epoch), int(sample)])
        snr = float(rng.uniform(self.snr_db[0], self.snr_db[-1])) if self.snr_db else None
        dead = int(rng.integers(0, self.dead_sensors, endpoint=True)) if self.dead_sensors else 0
        seed, draw = (int(s) for s in rng.integers(0, 2**63, size=2))
        return Perturbation(snr_db=snr, seed=seed, dead_sensors=dead, draw=draw)

    def __call__(self, fields: np.ndarray, samples: np.ndarray, epoch: int) -> np.ndarray:
        """`fields` `(N, time, sensor, component)` [m] of global `samples` `(N,)` as augmented
        in `epoch`; a new float32 array."""
        return np.stack([self.draw(epoch, s)(field[None], np.asarray([s]))[0]
                         for field, s in zip(np.asarray(fields), np.asarray(samples))])


def augmentation(snr_db, dead_sensors: int, seed: int) -> Augmentation | None:
    """The Augmentation of the training options `augment_snr_db` (a list), `augment_dead_sensors`
    and `seed`, checked; None when it changes nothing (the default)."""
    found = Augmentation(tuple(snr_db), dead_sensors, seed)
    found.check()
    return found if found.active else None
