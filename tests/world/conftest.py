"""Import pyproj before anything opens a NetCDF file.

With the wheels of this environment (netCDF4 1.7.5.1.post1, pyproj 3.7.2), importing pyproj
AFTER a NetCDF file was read (``xr.open_dataset(...).load()``) crashes the process (segfault,
or "double free or corruption" at exit); importing it first is safe. ``read_ismn`` imports
pyproj (ismn -> pygeogrids -> pyproj), and these tests read NetCDF and ISMN in one process.
"""

import contextlib

with contextlib.suppress(ImportError):
    import pyproj  # noqa: F401
