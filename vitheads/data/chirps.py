"""The seed paper's signal: one linear or exponential chirp in a noisy 128x128 spectrogram.

Distributions follow PyPI `chirp-spectrogram-generator` 0.1.6, but the ridge is placed on
continuous bin centres (not truncated to integer bins) so the labels, the pixels and the
ground-truth mask all describe the same curve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

DURATION_S = 60.0
MAX_FREQ_HZ = 100.0
N_TIME_BINS = 128
N_FREQ_BINS = 128
MAX_CHIRP_DURATION_S = 15.0
MAX_CHIRP_BAND_HZ = 30.0
LINE_VARIANCE_BINS = 0.5  # the author's gaussian profile exp(-0.5 d^2 / 0.5): about 2 bins wide
SMOOTHING_SIGMA_BINS = 1.0
NOISE_RANGE = (0.09, 0.3)
CHIRP_TYPES = ("linear", "exponential")
# An exponential sweep cannot start or end at 0 Hz; the author clamps to one bin, as here.
MIN_EXPONENTIAL_FREQ_HZ = MAX_FREQ_HZ / N_FREQ_BINS

LABEL_COLUMNS = ("Chirp_Start_Time", "Chirp_Start_Freq", "Chirp_End_Freq", "Chirp_Duration", "Chirp_Type")


@dataclass(frozen=True)
class Chirp:
    start_time: float
    duration: float
    start_freq: float
    end_freq: float
    kind: str
    noise_level: float

    def frequency_at(self, t: np.ndarray) -> np.ndarray:
        """Instantaneous frequency (Hz) at times t (s) inside the chirp."""
        u = (np.asarray(t, dtype=float) - self.start_time) / self.duration
        if self.kind == "linear":
            return self.start_freq + (self.end_freq - self.start_freq) * u
        f0 = max(self.start_freq, MIN_EXPONENTIAL_FREQ_HZ)
        f1 = max(self.end_freq, MIN_EXPONENTIAL_FREQ_HZ)
        return f0 * (f1 / f0) ** u

    def label_row(self) -> tuple:
        return (self.start_time, self.start_freq, self.end_freq, self.duration, self.kind)


def sample_chirp(rng: np.random.Generator) -> Chirp:
    """Draw one chirp from the seed paper's distributions."""
    start_time = rng.uniform(0.0, DURATION_S - MAX_CHIRP_DURATION_S)
    duration = rng.uniform(1.0, MAX_CHIRP_DURATION_S)
    start_freq = rng.uniform(0.0, MAX_FREQ_HZ)
    end_freq = float(np.clip(start_freq + rng.uniform(-MAX_CHIRP_BAND_HZ, MAX_CHIRP_BAND_HZ), 0.0, MAX_FREQ_HZ))
    kind = CHIRP_TYPES[int(rng.integers(len(CHIRP_TYPES)))]
    noise_level = rng.uniform(*NOISE_RANGE)
    return Chirp(start_time, duration, start_freq, end_freq, kind, noise_level)


def bin_centres(n_bins: int, span: float) -> np.ndarray:
    return (np.arange(n_bins) + 0.5) * span / n_bins


def spectrogram(chirp: Chirp, rng: np.random.Generator) -> np.ndarray:
    """[freq, time] power: gaussian ridge along the chirp, plus white noise, then smoothed."""
    times = bin_centres(N_TIME_BINS, DURATION_S)
    inside = (times >= chirp.start_time) & (times <= chirp.start_time + chirp.duration)
    ridge_bins = chirp.frequency_at(times[inside]) * N_FREQ_BINS / MAX_FREQ_HZ - 0.5
    freq_bins = np.arange(N_FREQ_BINS)[:, None]
    power = np.zeros((N_FREQ_BINS, N_TIME_BINS))
    power[:, inside] = np.exp(-0.5 * (freq_bins - ridge_bins[None, :]) ** 2 / LINE_VARIANCE_BINS)
    power += chirp.noise_level * rng.standard_normal(power.shape)
    return gaussian_filter(power, sigma=SMOOTHING_SIGMA_BINS)
