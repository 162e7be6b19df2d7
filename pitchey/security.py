"""Security headers ("Pitchey Platform Deployment Architecture", § Security Architecture ›
Security Headers Configuration), applied to every response, and CORS for one frontend origin."""

from __future__ import annotations

__all__ = ["SECURITY_HEADERS", "cors_headers", "CORS_ALLOW_METHODS", "CORS_ALLOW_HEADERS"]

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data: https:; connect-src 'self'; "
        "font-src 'self' data:; object-src 'none'; frame-ancestors 'none'; base-uri 'self'; "
        "form-action 'self'; upgrade-insecure-requests"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "X-XSS-Protection": "1; mode=block",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Permissions-Policy": (
        "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
        "microphone=(), payment=(), usb=()"
    ),
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains; preload",
    # instead of aiohttp's "Python/3.11 aiohttp/3.x": no versions for a scanner to match
    "Server": "pitchey",
}

CORS_ALLOW_METHODS = "GET, POST, PUT, DELETE, OPTIONS"
CORS_ALLOW_HEADERS = "Content-Type, Authorization, X-Pitchey-Region, traceparent"


def cors_headers(origin: str) -> dict[str, str]:
    """Headers for a request from the one allowed origin (the strict policy of "Cloudflare
    Deployment Guide for Pitchey Platform", § Security Considerations › 2. CORS Configuration)."""
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Vary": "Origin",
    }
