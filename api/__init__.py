"""The submission API (Flask). Build it with ``api.app.create_app(settings)``."""
