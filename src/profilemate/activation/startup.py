"""Placeholder: replaced by the activation issue."""
