"""Settings, database engine and unit of work, errors: shared by every feature of the service."""
