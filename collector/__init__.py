"""nettvakt collector: ingest, SNMP and SSH polling, alerting, InfluxDB writing."""
