"""sm-downscale: soil-moisture downscaling workbench for the Tibetan Plateau.

The science lives here (grids, readers, the virtual TP, networks, training, inference,
validation). This package never imports Panel, HoloViews or Bokeh; the dashboard imports it.
"""

__version__ = "0.1.0"
