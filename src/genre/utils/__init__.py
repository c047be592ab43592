"""Small helpers: torch threads and device, optional extras, the cache folder."""
