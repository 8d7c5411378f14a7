"""Saliency (Simonyan et al. 2014): the gradient of the class score for each pixel, dS/dx, from
one forward and backward pass; the base's attribution as it stands."""

from __future__ import annotations

from .attributions import Attribution


class Saliency(Attribution):
    """dS/dx at the image."""
