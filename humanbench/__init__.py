"""humanbench: convert, evaluate and compare 3D human methods under exact, named protocols."""

__version__ = "0.1.0"
