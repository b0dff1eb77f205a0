"""The WSGI entry point: `gunicorn app:app` (see Procfile)."""

from weather_metrics import create_app

app = create_app()
