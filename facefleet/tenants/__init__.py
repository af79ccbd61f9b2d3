"""Tenants, their keys and limits: quotas reserved with a submission, max_running."""
