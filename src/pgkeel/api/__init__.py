"""The node HTTP API."""
