"""Fault injection: killed workers and servers, many writers, handlers that misbehave."""
