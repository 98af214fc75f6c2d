"""LensTrack: production tracking and quality control for optical prescription labs."""

__version__ = "0.1.0"
