"""One session's state: what the user looks at, and the data that follows from it.

:class:`DashboardState` holds the choices (page, model, variable, time, station, ...) as
parameters; the views render it and the URL mirrors its shareable part (:data:`URL_PARAMS`,
``pn.state.location.sync``), so a link reopens the same view. The derived data (the current
map frame, a station's series and metrics, a metric map) are methods that read through
:mod:`dashboard.store`, so they can be tested without a browser.

A model, a time or a station given in a URL is kept as written even when it is not valid, and
the views show :meth:`DashboardState.problems` instead of a plot: the user sees why, not a
silently different view.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import numpy as np
import pandas as pd
import param

from . import store
from .store import EmptyState

PAGES = {"map": "Map exploration", "stations": "Station comparison", "metrics": "Metric maps",
         "regenerate": "Regenerate", "about": "About"}
#: State parameters mirrored in the URL query (parameter -> query key).
URL_PARAMS = {"page": "page", "model": "model", "compare_to": "compare", "variable": "variable",
              "diff_a": "a", "diff_b": "b", "time": "time", "station": "station", "network": "network",
              "network_mean": "netmean", "series_models": "models", "metric": "metric",
              "reference": "reference", "period": "period", "projection": "proj"}
PREFERRED = store.PREFERRED
NETWORK_CHOICES = ["ALL", *store.NETWORKS]
METRICS = ["R", "bias", "ubRMSE"]


class DashboardState(param.Parameterized):
    """The state of one dashboard session."""

    page = param.Selector(default="map", objects=list(PAGES), doc="the page shown")
    model = param.String(default="", doc="registry name of the model shown (archive variable)")
    compare_to = param.String(default="", doc="second model: difference maps, side-by-side metric maps")
    variable = param.Selector(default="product", objects=store.VARIABLES, doc="map variable")
    diff_a = param.Selector(default="product", objects=list(store.SOURCES), doc="difference: A")
    diff_b = param.Selector(default="smap_9km", objects=list(store.SOURCES), doc="difference: B")
    time = param.String(default="", doc="product step, YYYY-MM-DDTHH (UTC)")
    station = param.String(default="", doc="NETWORK/STATION")
    network = param.Selector(default="ALL", objects=NETWORK_CHOICES, doc="network filter of the station map")
    network_mean = param.Boolean(default=False, doc="show the network-mean series instead of one station")
    series_models = param.List(default=[], item_type=str, doc="models drawn in the station series")
    metric = param.Selector(default="R", objects=METRICS)
    reference = param.Selector(default="smap", objects=["smap", "truth"])
    period = param.Selector(default="test", objects=["test", "train"], doc="validation period of the tables")
    projection = param.Selector(default="equal_area", objects=["equal_area", "plate_carree"],
                                doc="map projection (data stay PlateCarree): equal-area TP view or lon/lat")
    color_kind = param.Selector(default="sm", objects=["sm", "difference"], precedence=-1,
                                doc="derived: colour scheme of the map (changes only with the variable kind)")
    version = param.String(default="", precedence=-1,
                           doc="derived: the home's data version (archive VERSION + validation); "
                               "views refresh their model choices when it changes")
    progress_text = param.String(default="", precedence=-1,
                                 doc="derived: what a run is still making (progress.json), '' when nothing")

    def __init__(self, home: str | None = None, **params):
        self.home = home or store.current_home()
        super().__init__(**params)
        self._fill_defaults()
        self._on_variable()
        self.refresh()
        self.param.watch(lambda e: self._on_variable(), ["variable"])
        self.param.watch(self._on_network, ["network"])

    # ------------------------------------------------------------------ live data
    def refresh(self) -> bool:
        """Re-read the home's data version and progress record (a page calls this every few
        seconds): a model archived while the page is open appears in the choices, the progress
        line follows the run. True when the data changed."""
        ver = store.data_version(self.home)
        line = store.progress_text(self.home)
        changed = bool(self.version) and ver != self.version
        self.param.update(version=ver, progress_text=line)
        if changed:
            self._fill_defaults()
        return changed

    # ------------------------------------------------------------------ defaults
    @property
    def inv(self) -> store.Inventory:
        return store.inventory(self.home)

    def _fill_defaults(self) -> None:
        inv = self.inv
        models = list(inv.shown)     # the map page also shows models computed on demand
        upd = {}
        if not self.model and models:
            upd["model"] = next((m for m in PREFERRED if m in models), models[0])
        if not self.compare_to and models:
            first = upd.get("model", self.model)
            upd["compare_to"] = next((m for m in PREFERRED if m in models and m != first),
                                     next((m for m in models if m != first), first))
        if not self.time and inv.has_archive:
            upd["time"] = self.default_time()
        if not self.series_models and inv.models:
            upd["series_models"] = [m for m in (upd.get("model", self.model), upd.get("compare_to", self.compare_to))
                                    if m in inv.models][:2]
        if not self.station:
            sid = self.default_station()
            if sid:
                upd["station"] = sid
        if upd:
            self.param.update(**upd)

    def default_time(self) -> str:
        """00 UTC of the first test-period day (a SMAP overpass step), else the first step."""
        inv = self.inv
        test = inv.periods.get("test")
        if test:
            t = store.snap_time(inv, str(test[0]))
            if t:
                return t
        return store.time_key(inv.times[0])

    def default_station(self) -> str | None:
        try:
            st = self.stations()
        except Exception:  # noqa: BLE001 - no station table: no default
            return None
        ok = st[st["has_data"] & (st["n_insitu"] > 0)]
        if ok.empty:
            ok = st
        if ok.empty:
            return None
        return str(ok.sort_values("n_insitu", ascending=False, kind="mergesort").iloc[0]["id"])

    def _on_network(self, *_) -> None:
        """A network picked (by hand or from a link) whose stations do not include the current
        one: show that network's best-covered station instead."""
        if self.network == "ALL":
            return
        row = self.station_row()
        if row is not None and str(row["network"]) == self.network:
            return
        sid = self.default_station()
        if sid:
            self.station = sid

    def _on_variable(self) -> None:
        self.color_kind = "difference" if self.variable == "difference" else "sm"

    # ------------------------------------------------------------------ time
    @property
    def times(self) -> np.ndarray:
        return self.inv.times

    @property
    def time_index(self) -> int | None:
        """Index of :attr:`time` on the archive axis (None if it is not a step of it)."""
        try:
            return store.check_time(self.inv, self.time)[1]
        except EmptyState:
            return None

    def set_index(self, i: int) -> None:
        t = self.times
        if t.size:
            self.time = store.time_key(t[int(np.clip(i, 0, t.size - 1))])

    def step(self, n: int = 1) -> None:
        """Move the time by ``n`` product steps (clamped to the archive)."""
        i = self.time_index
        self.set_index((0 if n > 0 else self.times.size - 1) if i is None else i + n)

    def jump(self, when) -> None:
        """Go to the archive step nearest ``when`` (a date, a datetime or a string)."""
        t = store.snap_time(self.inv, str(pd.Timestamp(when)))
        if t:
            self.time = t

    # ------------------------------------------------------------------ messages
    def problems(self, page: str | None = None) -> list[str]:
        """Why the current view of ``page`` cannot be drawn (empty when it can)."""
        page = page or self.page
        out = list(self.inv.problems[:1]) if not self.inv.has_archive else []
        try:
            if page == "map":
                self.map_data()
            elif page == "stations":
                self.series()
            elif page == "metrics":
                self.metric_map(self.model)
            elif page == "regenerate":
                store.check_model(self.inv, self.model)
                store.check_time(self.inv, self.time)
        except EmptyState as exc:
            if str(exc) not in out:
                out.append(str(exc))
        return out

    # ------------------------------------------------------------------ map page
    def source_label(self, source: str) -> str:
        if source in ("product", "compare"):
            m = self.model if source == "product" else self.compare_to
            if m in self.inv.on_demand:
                return f"{m} (10 km, computed on demand: not archived yet)"
            return f"{m} (10 km)"
        return store.SOURCES[source][0]

    @property
    def map_title(self) -> str:
        t = store.fmt_time(store.parse_time(self.time)) if store.parse_time(self.time) is not None else self.time
        if self.variable == "difference":
            what = f"{self.source_label(self.diff_a)} minus {self.source_label(self.diff_b)}"
        else:
            what = self.source_label(self.variable)
        return f"{what}, {t} UTC"

    def map_data(self):
        """The current map (DataArray (lat, lon), m3 m-3) or :class:`EmptyState`."""
        if self.variable == "difference":
            if self.diff_a == self.diff_b:
                raise EmptyState("A difference needs two different sources: change A or B.")
            a = store.frame_da(self.home, self.diff_a, self.model, self.time, self.compare_to)
            b = store.frame_da(self.home, self.diff_b, self.model, self.time, self.compare_to)
            d = (a - b).astype("float32")
            d.name = "difference"
            d.attrs = {"units": store.SM_UNITS, "long_name": f"{a.attrs['long_name']} minus {b.attrs['long_name']}",
                       "time": a.attrs["time"]}
            return d
        return store.frame_da(self.home, self.variable, self.model, self.time, self.compare_to)

    def map_tag(self) -> str:
        """What the current map shows, for file names: ``pscnet``, ``smap9``, ``pscnet-minus-smap9``."""
        def tag(src):
            if src == "product":
                return self.model
            if src == "compare":
                return self.compare_to
            return store.SOURCES[src][1]
        if self.variable == "difference":
            return f"{tag(self.diff_a)}-minus-{tag(self.diff_b)}"
        return tag(self.variable)

    # ------------------------------------------------------------------ stations page
    def stations(self) -> pd.DataFrame:
        st = store.station_table(self.home)
        return st if self.network == "ALL" else st[st["network"] == self.network].reset_index(drop=True)

    def station_row(self) -> dict | None:
        """The station's row of :func:`store.station_table` (a dict), None if unknown."""
        return store.station_index(self.home).get(self.station)

    @property
    def series_network(self) -> str | None:
        """The network whose mean is shown (network mean on), else None."""
        if not self.network_mean:
            return None
        if self.network != "ALL":
            return self.network
        row = self.station_row()
        return None if row is None else str(row["network"])

    def series(self) -> pd.DataFrame:
        """The station's (or network mean) series: insitu, SMAP, chosen models, precipitation."""
        net = self.series_network
        if self.network_mean and net is None:
            raise EmptyState("Pick a network (or a station) to see a network mean.")
        if net is not None:
            w = store.network_series(self.home, net)
        else:
            if not self.station:
                raise EmptyState("Click a station on the map.")
            w = store.station_series(self.home, self.station, tuple(self.series_models))
        missing = [m for m in self.series_models if m not in self.inv.models]
        if missing:
            raise EmptyState(f"Models {missing} are not in the archive (it holds {', '.join(self.inv.models)}).")
        cols = ["insitu", "smap_l3_9km", *self.series_models, store.PRECIP]
        out = w.reindex(columns=cols)
        if not out.drop(columns=[store.PRECIP]).notna().any().any():
            what = f"network {net}" if net else f"station {self.station}"
            raise EmptyState(f"The {what} has no soil-moisture data in the period {self.inv.period_text()}.")
        return out

    def metrics_table(self) -> pd.DataFrame:
        """R, bias, ubRMSE, N and each model's rank at the station (or network mean)."""
        net = self.series_network
        models = list(self.series_models) or None
        if net is not None:
            return store.network_metrics(self.home, net, self.period, models)
        return store.station_metrics(self.home, self.station, self.period, models)

    def series_title(self) -> str:
        net = self.series_network
        if net is not None:
            return f"{store.NETWORK_LABELS.get(net, net)} network mean"
        row = self.station_row()
        if row is None:
            return self.station or "no station"
        elev = f", {row['elevation']:.0f} m" if np.isfinite(row["elevation"]) else ""
        return f"{row['station']} ({row['label']}), {row['lat']:.3f} N {row['lon']:.3f} E{elev}"

    def series_tag(self) -> str:
        net = self.series_network
        who = f"{net}-mean" if net else self.station.replace("/", "-")
        models = "-".join(self.series_models) or "refs"
        t = self.times
        span = f"{store.time_key(t[0])[:10]}_{store.time_key(t[-1])[:10]}" if t.size else "noperiod"
        return f"{models}_{who}_{span}"

    # ------------------------------------------------------------------ metric maps page
    def metric_map(self, model: str):
        """The ``metric`` map of ``model`` against ``reference`` (DataArray) or :class:`EmptyState`."""
        ds = store.metric_maps(self.home, self.reference)
        have = [str(m) for m in ds["model"].values]
        if model not in have:
            raise EmptyState(f"No {self.reference} metric maps for {model!r} (the results hold {', '.join(have)}).")
        if self.metric not in ds:
            raise EmptyState(f"No {self.metric} in the metric maps against {self.reference}.")
        da = ds[self.metric].sel(model=model)
        da.attrs = {"units": store.METRIC_UNITS.get(self.metric, ""), "long_name":
                    f"{self.metric} of {model} against {'SMAP L3 9 km' if self.reference == 'smap' else 'the hidden truth'}"}
        return da

    def metric_tag(self) -> str:
        return f"{self.model}-vs-{self.compare_to}_{self.metric}_against-{self.reference}_test-period"

    def temporal_table(self) -> pd.DataFrame:
        t = store.table(self.home, "temporal")
        keep = [c for c in ("model", "reference", "R_train", "R_test", "rel_change_R", "ubRMSE_train",
                            "ubRMSE_test", "rel_change_ubRMSE", "bias_train", "bias_test") if c in t]
        out = t[keep].copy()
        for c in keep[2:]:
            out[c] = out[c].astype(float).round(4)
        if "rel_change_R" in out:
            out["R_within_6pct"] = out["rel_change_R"].abs() <= 0.06
        if "rel_change_ubRMSE" in out:
            out["ubRMSE_within_2pct"] = out["rel_change_ubRMSE"].abs() <= 0.02
        return out.sort_values(["reference", "model"]).reset_index(drop=True)

    # ------------------------------------------------------------------ URL
    def url_query(self) -> str:
        """The query string of the shareable state (what ``location.sync`` writes)."""
        q = {}
        for p, k in URL_PARAMS.items():
            v = getattr(self, p)
            q[k] = json.dumps(v) if isinstance(v, (list, bool)) else v
        return urlencode(q)
