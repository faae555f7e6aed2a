"""model.features: what every method reads, on the layer below the worlds, networks and training.

- :mod:`.ard`: the analysis-ready store (``ard.zarr``): opening its groups, its identity, the
  inputs of a period, the SMAP targets (:data:`.ard.TARGETS`);
- :mod:`.channels`: the predictor channels, their transforms and normalisation;
- :mod:`.cube`: predictor cubes (multi-frequency history windows) and the target samples.
"""
