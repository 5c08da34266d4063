"""Alerting: rules over the collector's live points, routed to people (issue 6).

Modules, each one concern: `rules` (rule kinds, one table), `config` (inventory models;
imports nothing from collector.config so that module can import it), `engine` (state
machines, dependencies, routing, grouping), `silences`, `channels` (email, webhook),
`service` (runs it all in the collector). Import from the module you need; this package
file stays empty so that importing `collector.alerting.config` pulls in nothing else.
"""
