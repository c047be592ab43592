"""Serving recourse: the HTTP service (serve) and batch recourse on Ray (ray)."""
