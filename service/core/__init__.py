"""Settings, database plumbing, errors and statuses: shared by every feature of the service,
importing nothing of it."""
