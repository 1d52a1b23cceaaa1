"""workers: tasks, training and tuning jobs on Ray Tune, using alto_core's optimizers."""
