"""The dashboard's web application: sign-in, pages, live updates."""
