"""Propylon: a self-hosted server for Google's Interactions API, on any model."""

from propylon.app import create_app
from propylon.config import Settings

__all__ = ["Settings", "__version__", "create_app"]

__version__ = "0.1.0"
