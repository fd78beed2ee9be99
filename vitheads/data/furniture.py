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
    keep_layout: bool = False  # lay out the plot as with every element, then hide the ones switched off

    @property
    def laid_out(self) -> Distortions:
        """The furniture the layout is computed for: all of it when the layout is kept."""
        return Distortions() if self.keep_layout else self

    @property
    def any(self) -> bool:
        return self.title or self.axis_labels or self.tick_labels or self.colorbar or self.frame
