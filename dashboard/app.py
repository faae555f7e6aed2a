"""``panel serve dashboard/app.py``: one session's page (run per session; keep it thin).

The data caches (``dashboard.store``) are shared by all sessions of the server; each session
gets its own state object. Reads ``$SMDS_HOME`` (``model.config.home()``).
"""

from dashboard.shell import build

build().servable(title="sm-downscale: TP soil moisture")
