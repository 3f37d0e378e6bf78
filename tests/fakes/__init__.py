"""In-process stand-ins for services our machines cannot run (a Kubernetes API server)."""
