"""What the fleet tells its operators: logs, Prometheus metrics and their names, service-level figures, memory peaks."""
