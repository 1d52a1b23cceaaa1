"""service: REST API, storage and dashboard of ALTO Tune (no torch, ray or workers)."""
