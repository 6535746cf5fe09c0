"""The PMO dashboard: a backend-for-frontend over the four services' HTTP APIs, with live pages."""
