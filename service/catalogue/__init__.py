"""The task and optimizer catalogue: published by workers, validated against by the API."""
