"""The Grayscale Standard Display Function (PS3.14) and densities as P-Values."""

from __future__ import annotations

import numpy as np
import pytest

from dicomhub.imaging.gsdf import DensityScale, film_luminance, jnd_index, luminance


def test_gsdf_matches_the_published_end_points() -> None:
    # PS3.14 Table B-1: L(1) = 0.0500 cd/m2, L(1023) = 3993.404 cd/m2
    assert luminance(1) == pytest.approx(0.05, abs=5e-4)
    assert luminance(1023) == pytest.approx(3993.4, abs=0.5)
    j = np.arange(1, 1024, dtype=np.float64)
    assert np.abs(jnd_index(luminance(j)) - j).max() < 0.5  # equation 2 inverts equation 1
    assert (np.diff(luminance(j)) > 0).all()


def test_density_to_p_values() -> None:
    scale = DensityScale(0.2, 3.0)
    assert scale.p_values([0.2, 3.0]).tolist() == [255.0, 0.0]
    assert scale.p_values([0.0, 4.0]).tolist() == [255.0, 0.0]  # clipped to the range
    middle = float(scale.p_values(1.6))
    # perceptually, 1.6 OD is far darker than half way: P-Values are not linear in density
    assert 40 < middle < 100
    assert film_luminance(0.0, 2000, 10) == pytest.approx(2010.0)
    with pytest.raises(ValueError):
        DensityScale(3.0, 0.2)


def test_linear_od_values() -> None:
    scale = DensityScale(0.2, 3.0)
    # LIN OD: 0 is Max Density, the largest value Min Density, linear in OD in between
    assert scale.linear_od([0.0, 255.0]).tolist() == pytest.approx([0.0, 255.0])
    assert float(scale.linear_od(127.5)) == pytest.approx(float(scale.p_values(1.6)))
    values = scale.linear_od(np.arange(256, dtype=np.float64))
    assert (np.diff(values) >= 0).all()
