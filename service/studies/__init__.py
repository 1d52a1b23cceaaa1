"""Studies: one per (job, batch size, optimizer arm), each an Optuna study run through Ray Tune."""
