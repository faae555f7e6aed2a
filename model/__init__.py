"""sm-downscale: soil-moisture downscaling workbench for the Tibetan Plateau.

The science lives here (grids, readers, the virtual TP, networks, training, inference,
validation). This package never imports Panel, HoloViews or Bokeh; the dashboard imports it.
"""

__version__ = "0.1.0"

# Load PROJ (pyproj) before ecCodes (cfgrib): the wheels of eccodeslib and pyproj bundle
# libraries that, loaded in the other order, corrupt the heap and abort the interpreter at
# exit ("free(): invalid pointer"), turning every successful run into exit status 134.
try:  # pragma: no cover - import-order guard
    import pyproj as _pyproj  # noqa: F401
except ImportError:  # pragma: no cover
    pass
