"""Utilities: image conversion, HTML pages, visualizer, image pool, logging."""
