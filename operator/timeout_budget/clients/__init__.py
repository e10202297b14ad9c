"""Thin wrappers over the external systems' client libraries: the one I/O seam per system."""
