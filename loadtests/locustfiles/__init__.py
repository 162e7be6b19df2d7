"""Locustfiles (entry points Locust loads by path). Each imports locust first."""
