"""The web console: server-rendered pages (FastAPI + Jinja2) in Kazakh, Russian and English."""
