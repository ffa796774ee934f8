"""The portal: server-rendered pages (Jinja2) over the same services and permissions as the API."""
