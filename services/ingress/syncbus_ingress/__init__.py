"""The HTTP ingress: sync requests and results over HTTP, for systems that cannot speak NATS."""
