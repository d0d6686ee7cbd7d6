"""The HTTP surface: the Flask app, the JSON API and its OpenAPI document, the views
shared by the API and the dashboard, and the dashboard."""
