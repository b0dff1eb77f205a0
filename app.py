"""The WSGI entry point: `gunicorn app:app` (see Procfile), and the app of `flask --app app <command>`.

Built without its background threads (the writer, alert evaluation, webhook deliveries, pruning,
exports, the live relay): gunicorn starts them in each worker once it has loaded the app
(runtime/gunicorn_conf.py, `post_worker_init`), while a command only uses the database.
"""

from weather_metrics import create_app

app = create_app(background=False)
