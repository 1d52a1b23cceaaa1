"""API tokens: creation, hashing, verification, and the request dependency that enforces them."""
