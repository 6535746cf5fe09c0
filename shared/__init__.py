"""Code every PMO service needs: event contracts, messaging, database, telemetry, settings."""
