"""nettvakt agent: probes, host metrics and hardware facts, with store-and-forward to the collector."""
