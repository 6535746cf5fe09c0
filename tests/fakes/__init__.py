"""In-memory stand-ins for the service layer's unit of work and repositories (unit tests only)."""
