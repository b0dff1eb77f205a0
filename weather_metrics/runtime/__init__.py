"""Running the service: background loops and the gunicorn server settings."""
