"""Which plot furniture surrounds the spectrogram (params.yaml `distortion`): plain data, so that the
modules that only describe renders (variants, regions) need no matplotlib."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Distortions:
    """Which plot furniture surrounds the spectrogram (params.yaml `distortion`)."""

    title: bool = True
    axis_labels: bool = True
    tick_labels: bool = True
    colorbar: bool = True
    frame: bool = True

    @property
    def any(self) -> bool:
        return self.title or self.axis_labels or self.tick_labels or self.colorbar or self.frame
