"""Monitoring: every project's earned-value health, and an alert the moment one slips."""
