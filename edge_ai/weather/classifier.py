"""A deliberately simple weather classifier: four image statistics and fixed thresholds.

It stands in for a trained environment model and is good enough to drive the optimiser from a
real camera in a demo. The statistics are computed on the frame scaled to 160 px wide:

* brightness: mean of HSV value (0..255)
* saturation: mean of HSV saturation (0..255)
* contrast:   standard deviation of the grey image
* sharpness:  variance of the Laplacian of the grey image (low: blurred, by fog or rain on the lens)

Rules, first match wins (thresholds are the ``Rules`` defaults):

1. NIGHT  when brightness < 60
2. FOGGY  when contrast < 35 and sharpness < 80         (flat and soft)
3. SNOWY  when brightness > 170 and saturation < 35     (bright and colourless)
4. RAINY  when brightness < 130 and saturation < 50     (dim and grey)
5. CLOUDY when saturation < 60
6. SUNNY  otherwise

A majority over the last ``window`` frames keeps the result from flickering.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rules:
    night_brightness: float = 60
    fog_contrast: float = 35
    fog_sharpness: float = 80
    snow_brightness: float = 170
    snow_saturation: float = 35
    rain_brightness: float = 130
    rain_saturation: float = 50
    cloud_saturation: float = 60


@dataclass(frozen=True)
class FrameStats:
    brightness: float
    saturation: float
    contrast: float
    sharpness: float


def frame_stats(frame: Any) -> FrameStats:
    import cv2

    height, width = frame.shape[:2]
    if width > 160:
        frame = cv2.resize(
            frame, (160, max(1, int(height * 160 / width))), interpolation=cv2.INTER_AREA
        )
    hsv = cv2.cvtColor(frame, cv2.COLOR_BGR2HSV)
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    return FrameStats(
        brightness=float(hsv[:, :, 2].mean()),
        saturation=float(hsv[:, :, 1].mean()),
        contrast=float(grey.std()),
        sharpness=float(cv2.Laplacian(grey, cv2.CV_64F).var()),
    )


def classify_stats(s: FrameStats, rules: Rules = Rules()) -> str:
    if s.brightness < rules.night_brightness:
        return "NIGHT"
    if s.contrast < rules.fog_contrast and s.sharpness < rules.fog_sharpness:
        return "FOGGY"
    if s.brightness > rules.snow_brightness and s.saturation < rules.snow_saturation:
        return "SNOWY"
    if s.brightness < rules.rain_brightness and s.saturation < rules.rain_saturation:
        return "RAINY"
    if s.saturation < rules.cloud_saturation:
        return "CLOUDY"
    return "SUNNY"


class SmoothedClassifier:
    def __init__(self, rules: Rules = Rules(), window: int = 5):
        self.rules = rules
        self._recent: deque[str] = deque(maxlen=window)

    def update(self, frame: Any) -> str:
        self._recent.append(classify_stats(frame_stats(frame), self.rules))
        # Ties go to the most recent frame's class.
        counts = Counter(self._recent)
        best = max(counts.values())
        return next(c for c in reversed(self._recent) if counts[c] == best)
