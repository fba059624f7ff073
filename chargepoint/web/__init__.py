"""The local dashboard and Prometheus metrics: an HTTP adapter on the charger's port (opt-in, [monitoring])."""
