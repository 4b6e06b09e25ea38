"""Prometheus, Grafana, dashboards and alerts."""
