"""The Pitchey platform service: the system under test of the performance suite.

It never imports the suite packages (loadtests, collectors, alerts, dashboards).
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
