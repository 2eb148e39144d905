"""The Grayscale Standard Display Function (PS3.14) and optical density as P-Values.

A printed film is kept in the archive as a MONOCHROME2 image whose pixel values are P-Values
(perceptually linear, PS3.14): shown on a display calibrated to the GSDF, the archived film looks
like the printed one.  A printer turns P-Values into optical density (PS3.14 7.3); this module
goes the other way, for everything that print management specifies as a density:

- ``BorderDensity`` and ``EmptyImageDensity`` (hundredths of OD, BLACK, WHITE);
- images sent with Presentation LUT Shape ``LIN OD``, whose values are linear in optical density
  between Max Density (value 0) and Min Density (the largest value) (PS3.3 C.11.4,
  Presentation LUT Shape).

The film is transmissive: the luminance of density D is ``L = La + L0 * 10**-D`` with the film
box's Illumination L0 (default 2000 cd/m2) and Reflected Ambient Light La (default 10 cd/m2), the
defaults PS3.4 H.4.2.2.1 recommends.  P-Values span the JND indexes from ``j(L(MaxDensity))``
(P-Value 0, black) to ``j(L(MinDensity))`` (the largest P-Value, white), as PS3.14 7.3 defines.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

DEFAULT_ILLUMINATION = 2000.0
"""L0, cd/m2 (PS3.4 H.4.2.2.1 recommended default for grayscale printing)."""
DEFAULT_REFLECTED_AMBIENT_LIGHT = 10.0
"""La, cd/m2 (PS3.4 H.4.2.2.1 recommended default for grayscale printing)."""

# PS3.14 Table 7-1 / equation 1 (luminance of a JND index) and equation 2 (its inverse).
_A, _B, _C, _D, _E = -1.3011877, -2.5840191e-2, 8.0242636e-2, -1.0320229e-1, 1.3646699e-1
_F, _G, _H, _K, _M = 2.8745620e-2, -2.5468404e-2, -3.1978977e-3, 1.2992634e-4, 1.3635334e-3
_INVERSE = (
    71.498068,
    94.593053,
    41.912053,
    9.8247004,
    0.28175407,
    -1.1878455,
    -0.18014349,
    0.14710899,
    -0.017046845,
)
JND_MIN, JND_MAX = 1.0, 1023.0
"""The JND index range of the GSDF (0.05 to 4000 cd/m2)."""


def luminance(jnd: ArrayLike) -> FloatArray:
    """L(j), cd/m2, of JND indexes 1..1023 (PS3.14 equation 1)."""
    ln = np.log(np.asarray(jnd, dtype=np.float64))
    numerator = _A + _C * ln + _E * ln**2 + _G * ln**3 + _M * ln**4
    denominator = 1 + _B * ln + _D * ln**2 + _F * ln**3 + _H * ln**4 + _K * ln**5
    return np.asarray(10.0 ** (numerator / denominator), dtype=np.float64)


def jnd_index(lum: ArrayLike) -> FloatArray:
    """j(L), the JND index of a luminance in cd/m2 (PS3.14 equation 2), clipped to 1..1023."""
    log_l = np.log10(np.clip(np.asarray(lum, dtype=np.float64), 0.05, 4000.0))
    result = np.zeros_like(log_l)
    for power, coefficient in enumerate(_INVERSE):
        result += coefficient * log_l**power
    return np.asarray(np.clip(result, JND_MIN, JND_MAX), dtype=np.float64)


def film_luminance(
    density: ArrayLike,
    illumination: float = DEFAULT_ILLUMINATION,
    ambient: float = DEFAULT_REFLECTED_AMBIENT_LIGHT,
) -> FloatArray:
    """The luminance of transmissive film of optical density ``density`` on a light box."""
    return np.asarray(
        ambient + illumination * 10.0 ** -np.asarray(density, dtype=np.float64),
        dtype=np.float64,
    )


class DensityScale:
    """Optical density <-> P-Values (0 .. ``maximum``) for one film's density range and light."""

    def __init__(
        self,
        min_density: float,
        max_density: float,
        illumination: float = DEFAULT_ILLUMINATION,
        ambient: float = DEFAULT_REFLECTED_AMBIENT_LIGHT,
        maximum: float = 255.0,
    ) -> None:
        if max_density <= min_density:
            raise ValueError(f"Max Density {max_density} is not above Min Density {min_density}")
        self.min_density = min_density
        self.max_density = max_density
        self.illumination = illumination
        self.ambient = ambient
        self.maximum = maximum
        self.j_black = float(jnd_index(film_luminance(max_density, illumination, ambient)))
        self.j_white = float(jnd_index(film_luminance(min_density, illumination, ambient)))

    def p_values(self, density: ArrayLike) -> FloatArray:
        """P-Values (0 black .. ``maximum`` white) of optical densities, clipped to the range."""
        clipped = np.clip(np.asarray(density, dtype=np.float64), self.min_density, self.max_density)
        j = jnd_index(film_luminance(clipped, self.illumination, self.ambient))
        if self.j_white <= self.j_black:
            return np.where(clipped <= self.min_density, self.maximum, 0.0)
        scaled = (j - self.j_black) / (self.j_white - self.j_black) * self.maximum
        return np.asarray(np.clip(scaled, 0.0, self.maximum), dtype=np.float64)

    def linear_od(self, values: ArrayLike) -> FloatArray:
        """P-Values of values linear in optical density (Presentation LUT Shape LIN OD):
        0 is Max Density, ``maximum`` is Min Density."""
        fraction = np.clip(np.asarray(values, dtype=np.float64) / self.maximum, 0.0, 1.0)
        density = self.max_density - fraction * (self.max_density - self.min_density)
        return self.p_values(density)
