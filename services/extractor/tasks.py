"""Celery tasks of this stage (thin: the work lives in plain functions)."""
