"""syncbus."""
