"""What the API serves: the in-memory index of one curated version (``index``), the host's on-disk copy of
the serving files it maps (``cache``) and the holder that keeps the newest version served (``holder``)."""
