"""The collector's status pages, server-rendered: the overview at `/`, a page per site and per device.

collector/status/layout.py is the shell every page shares (style, refresh in place, how things
are written for people); sections.py the parts; overview.py, site.py and device.py the pages.
The history they show is read by collector/history.py and drawn by collector/svg.py.
"""

from collector.status.overview import render_status

__all__ = ["render_status"]
