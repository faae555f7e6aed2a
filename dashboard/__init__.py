"""The Panel dashboard of sm-downscale (``panel serve dashboard/app.py``).

Layers, following Panel's own guidance (a data store, views that render it, an app that
composes):

* :mod:`dashboard.store`   data access, cached across sessions (``pn.cache``); reads ONE map
  frame or ONE station series at a time, never the whole archive;
* :mod:`dashboard.state`   one :class:`~dashboard.state.DashboardState` per session (page,
  model, variable, time, station, ...), synchronised with the URL;
* :mod:`dashboard.views`   one module per page; each renders the state;
* :mod:`dashboard.export`  the current view as PNG/SVG (matplotlib, on the server) and its
  data as NetCDF/CSV;
* :mod:`dashboard.app`     builds one session's page.

Nothing imported at start-up imports torch: the runner (and torch) is imported only when a
scene is regenerated.
"""
