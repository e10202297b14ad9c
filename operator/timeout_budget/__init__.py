"""Timeout Budget Operator: keeps every HTTP route inside its Cloudflare timeout budget."""

__version__ = "0.1.0"
