"""`nettvakt diagnose SITE`: locate and explain slowness and loss at a site.

data.py gathers what the site's agents and SNMP devices stored (through collector.timeseries),
analysis.py runs the checks (one table of small functions with one signature) into verdicts,
render.py turns them into text, Markdown or JSON, cli.py ties it to the command line.
"""

from collector.diagnose.analysis import CHECKS, Diagnosis, Suggestion, Verdict, diagnose
from collector.diagnose.data import SiteContext, SiteData, load_site_data, site_context

__all__ = ["CHECKS", "Diagnosis", "SiteContext", "SiteData", "Suggestion", "Verdict", "diagnose", "load_site_data", "site_context"]
