"""SNMP polling: sessions (pysnmp), vendor profiles as data, and the device poller."""
