"""What every syncbus service shares: message contracts, NATS topology, settings, logging."""
