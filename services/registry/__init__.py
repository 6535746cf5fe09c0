"""Registry: the system of record for the portfolio's projects and where each stands."""
