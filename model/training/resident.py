"""Device-resident inputs: the predictor cube on the GPU, windows and patches cut there.

On a GPU the runner's cost is not the network (PSCNet: ~2 ms a TP scene on an H100) but the
window assembly on the host (~35 ms a scene). This module keeps a
:class:`~model.features.cube.PredictorCube` on a torch device instead:

* :class:`ResidentCube` copies the cube's 3-hourly fields, daily and weekly means and static
  layers (cropped to the data region) to the device once, in one contiguous transfer per
  array, and builds the multi-frequency windows of a batch of steps by indexing there
  (:meth:`ResidentCube.windows`), normalised with a model's statistics on the device;
* :func:`predict_steps` runs a model over many steps in batches, post-processes on the
  device (de-normalise, clip, NaN outside the data) and copies the scenes back in large
  pieces through pinned buffers on a side stream, so the copy of a batch overlaps the next
  batch's compute;
* :class:`ResidentPatches` cuts training batches (patches, windows, targets at SMAP's cells)
  from a resident training cube, with the same distribution as the trainer's rejection
  sampling (uniform over the valid (step, row, col) triples).

The same code runs with ``device="cpu"`` (CI has no GPU); there it gives the runner's scenes
within 1e-5 m3 m-3 (tests/pipeline/test_resident.py). Nothing here is used on the CPU unless
asked for: the CPU runner keeps the NumPy path.
"""

from __future__ import annotations

import numpy as np

from ..errors import CoverageError, InputError
from ..features.channels import DERIVED, DYNAMIC
from ..features.cube import REGION_MARGIN, static_channels
from ..grids import tp_mask
from ..schema import SM_CLIP as CLIP

T3, TD, TW = 8, 7, 4


def _torch():
    # lazy: torch costs 0.9 s at import; the dashboard imports this module at start-up
    import torch

    return torch


def to_device(a: np.ndarray, device):
    """One contiguous host-to-device copy of a float32 array (through pinned memory on CUDA)."""
    torch = _torch()
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    if str(device).startswith("cuda"):
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def transform_t(name: str, v):
    """:func:`model.features.channels.transform` on torch tensors (physical -> standardised-ready)."""
    if name in ("tp", "sd"):
        return (v.clamp(min=0) * 1000.0).log1p()
    if name == "e":
        return -v * 1000.0
    if name == "ssrd":
        return v / 10800.0
    return v


class ResidentCube:
    """A predictor cube's (ys, xs) region held on ``device``.

    Parameters
    ----------
    cube : :class:`~model.features.cube.PredictorCube`, un-normalised (the provider's).
    ys, xs : the region (slices of the cube's grid) that scenes are computed on.
    device : torch device ("cpu", "cuda", "cuda:1").
    """

    def __init__(self, cube, ys: slice, xs: slice, device, tensors: dict | None = None):
        torch = _torch()
        self.device = torch.device(device)
        self.ys, self.xs = ys, xs
        if tensors is not None:  # built on the device (:func:`build_resident`)
            self.times = tensors["times"]
            self.x3, self.daily, self.weekly = tensors["x3"], tensors["daily"], tensors["weekly"]
            self.static, self.day_index = tensors["static"], tensors["day_index"]
            self.valid = tensors["valid"]
        else:
            self.times = cube.times
            self.x3 = to_device(cube.x3[:, :, ys, xs], device)          # (T, C, h, w)
            self.daily = to_device(cube.daily[:, :, ys, xs], device)    # (D, C, h, w)
            self.weekly = to_device(cube.weekly[:, :, ys, xs], device)  # (D, C, h, w)
            self.static = to_device(cube.static[:, ys, xs], device)     # (S, h, w)
            self.day_index = torch.as_tensor(cube.day_index, dtype=torch.long, device=self.device)
            self.valid = None
        self._norms: dict = {}
        self._ar3 = torch.arange(-T3 + 1, 1, device=self.device)
        self._ard = torch.arange(-TD, 0, device=self.device)
        self._arw = -7 * torch.arange(TW - 1, -1, -1, device=self.device)

    @property
    def nbytes(self) -> int:
        return sum(int(t.numel() * t.element_size()) for t in (self.x3, self.daily, self.weekly, self.static))

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.x3.shape[-2:])

    def step_indices(self, times) -> np.ndarray:
        t = np.asarray(times, dtype="datetime64[ns]")
        i = np.searchsorted(self.times, t)
        ok = (i < self.times.size) & (self.times[np.clip(i, 0, self.times.size - 1)] == t)
        if not ok.all():
            bad = t[~ok][0]
            raise CoverageError(f"time {np.datetime_as_string(bad, unit='h')} is not a step of the resident inputs",
                                "choose a time inside the ingested period, on 00, 03, ..., 21 UTC")
        return i

    def _norm_tensors(self, norm):
        key = (tuple(norm.dyn_mean), tuple(norm.dyn_std), tuple(norm.sta_mean), tuple(norm.sta_std))
        hit = self._norms.get(key)
        if hit is None:
            torch = _torch()
            f = dict(dtype=torch.float32, device=self.device)
            dm = torch.tensor(norm.dyn_mean, **f).view(1, 1, -1, 1, 1)
            ds = torch.tensor(norm.dyn_std, **f).view(1, 1, -1, 1, 1)
            sm = torch.tensor(norm.sta_mean, **f).view(-1, 1, 1)
            ss = torch.tensor(norm.sta_std, **f).view(-1, 1, 1)
            static = torch.nan_to_num((self.static - sm) / ss, nan=0.0)
            hit = (dm, ds, static)
            self._norms = {key: hit}  # one model's statistics at a time (models of a store share them)
        return hit

    def windows(self, steps, norm=None) -> dict:
        """The windows of ``steps`` (step indices, (B,)) as device tensors:
        x3h (B, 8, C, h, w), xday (B, 7, C, h, w), xweek (B, 4, C, h, w), static (B, S, h, w);
        standardised with ``norm`` (NaN -> 0) when given, else raw (static raw too)."""
        torch = _torch()
        s = torch.as_tensor(np.asarray(steps), dtype=torch.long).to(self.device)
        i3 = (s[:, None] + self._ar3[None]).clamp_(0, self.x3.shape[0] - 1)
        d = self.day_index[s]
        idd = (d[:, None] + self._ard[None]).clamp_(0, self.daily.shape[0] - 1)
        iw = (d[:, None] + self._arw[None]).clamp_(0, self.daily.shape[0] - 1)
        out = {"x3h": self.x3[i3], "xday": self.daily[idd], "xweek": self.weekly[iw]}
        b = s.shape[0]
        if norm is None:
            out["static"] = self.static.unsqueeze(0).expand(b, -1, -1, -1).contiguous()
            return out
        dm, ds, static = self._norm_tensors(norm)
        for k in ("x3h", "xday", "xweek"):
            out[k] = torch.nan_to_num((out[k] - dm) / ds, nan=0.0)
        out["static"] = static.unsqueeze(0).expand(b, -1, -1, -1).contiguous()
        return out


def build_resident(era5, static, device, margin: int | None = None) -> ResidentCube:
    """A :class:`ResidentCube` made on ``device`` straight from the loaded inputs: the raw
    ERA5-Land fields go over once per channel, and the transforms, the TP mask, the daily
    and weekly means and the data region are computed there (what
    :func:`model.features.cube.build_cube` and :func:`model.inference.runner.data_region`
    do on the host). ``era5``: 3-hourly TP10 Dataset (physical units, loaded); ``static``:
    the TP10 static Dataset. ``rc.valid``: the (h, w) cells with inputs inside the region."""
    torch = _torch()

    margin = REGION_MARGIN if margin is None else margin
    dev = torch.device(device)
    t = era5["time"].values.astype("datetime64[ns]")
    if t.size > 1 and np.any(np.diff(t) != np.timedelta64(3, "h")):
        raise InputError("predictor times are not a regular 3-hourly series",
                         "ingest a continuous period (a time step is missing)")
    missing = [c for c in DYNAMIC if c not in era5 and not (c in DERIVED and DERIVED[c][0] in era5)]
    if missing:
        raise InputError(f"the ERA5-Land inputs lack channels {missing}",
                         "ingest ERA5-Land files holding " + ", ".join(DYNAMIC))
    tpm = np.asarray(tp_mask("TP10"))
    tpm_t = torch.as_tensor(np.array(tpm), device=dev)
    full = torch.empty((t.size, len(DYNAMIC)) + tpm.shape, dtype=torch.float32, device=dev)
    for k, c in enumerate(DYNAMIC):
        if c in era5:
            raw = to_device(era5[c].values, dev)
        else:  # a derived channel (features.derive), computed on the device the same way
            src, steps = DERIVED[c]
            x = to_device(era5[src].values, dev)
            raw = x.clone()
            for j in range(1, min(steps, x.shape[0])):
                raw[j:] = torch.fmin(raw[j:], x[:-j])
        v = transform_t(c, raw)
        full[:, k] = torch.where(tpm_t, v, float("nan"))
    valid = (tpm_t & full.isfinite().any(1).any(0)).cpu().numpy()
    if valid.any():
        r, cidx = np.flatnonzero(valid.any(1)), np.flatnonzero(valid.any(0))
        ys = slice(max(r[0] - margin, 0), min(r[-1] + 1 + margin, valid.shape[0]))
        xs = slice(max(cidx[0] - margin, 0), min(cidx[-1] + 1 + margin, valid.shape[1]))
    else:
        ys = xs = slice(0, 0)
    x3 = full[:, :, ys, xs].contiguous()
    del full
    days64 = t.astype("datetime64[D]")
    days = np.unique(days64)
    day_index = torch.as_tensor((days64 - days[0]).astype(np.int64), device=dev)
    ok = x3.isfinite()
    shape = (days.size,) + tuple(x3.shape[1:])
    tot = torch.zeros(shape, dtype=torch.float32, device=dev).index_add_(0, day_index, torch.where(ok, x3, 0.0))
    cnt = torch.zeros(shape, dtype=torch.float32, device=dev).index_add_(0, day_index, ok.float())
    del ok
    daily = torch.where(cnt > 0, tot / cnt, float("nan"))
    del tot, cnt
    # weekly[d] = mean of days d-7 .. d-1 (clamped at the start), float64 sums as on the host
    z = torch.zeros((1,) + shape[1:], dtype=torch.float64, device=dev)
    cs = torch.cat([z, torch.nan_to_num(daily.double(), nan=0.0).cumsum(0)])
    cn = torch.cat([z, daily.isfinite().double().cumsum(0)])
    d = torch.arange(days.size, device=dev)
    hi = d.clamp(min=1)
    lo = (hi - 7).clamp(min=0)
    weekly = ((cs[hi] - cs[lo]) / (cn[hi] - cn[lo])).float()
    del cs, cn
    st, _ = static_channels(static)
    tensors = {"times": t, "x3": x3, "daily": daily, "weekly": weekly, "day_index": day_index,
               "static": to_device(st[:, ys, xs], dev), "valid": valid[ys, xs]}
    return ResidentCube(None, ys, xs, dev, tensors=tensors)


def resident_cube(cube, ys: slice, xs: slice, device) -> ResidentCube:
    """The :class:`ResidentCube` of ``cube``'s region on ``device``, made once and kept on the
    cube (so it goes when the provider drops the cube from its cache)."""
    key = (str(device), ys.start, ys.stop, xs.start, xs.stop)
    store = getattr(cube, "_resident", None)
    if store is None:
        store = {}
        cube._resident = store
    rc = store.get(key)
    if rc is None:
        rc = store[key] = ResidentCube(cube, ys, xs, device)
    return rc


class _Forward:
    """A model applied to resident windows, with the runner's post-processing on the device."""

    def __init__(self, model, norm, valid_sub: np.ndarray, device, amp: bool, per_pixel: bool,
                 pixel_chunk: int):
        torch = _torch()
        self.torch = torch
        self.model = model
        self.norm = norm
        self.dev = torch.device(device)
        self.valid = torch.as_tensor(valid_sub, device=self.dev)
        self.idx = torch.as_tensor(np.flatnonzero(valid_sub), dtype=torch.long, device=self.dev)
        self.amp = amp
        self.per_pixel = per_pixel
        self.pixel_chunk = pixel_chunk
        self._pinned = None   # (B, h, w) pinned host buffers x 2, grown on demand (CUDA only)
        self._stream = None   # the side stream of the device-to-host copies

    def buffers(self, b: int, h: int, w: int):
        """Two pinned host buffers of at least (b, h, w) and the copy stream (made once)."""
        torch = self.torch
        if self._pinned is None or self._pinned[0].shape[0] < b or tuple(self._pinned[0].shape[1:]) != (h, w):
            self._pinned = [torch.empty((b, h, w), dtype=torch.float32, pin_memory=True) for _ in range(2)]
        if self._stream is None:
            self._stream = torch.cuda.Stream(device=self.dev)
        return self._pinned, self._stream

    def __call__(self, rc: ResidentCube, steps):
        """(B, h, w) float32 device tensor: soil moisture (m3 m-3), clipped, NaN without inputs."""
        torch = self.torch
        win = rc.windows(steps, self.norm)
        b = len(steps)
        with torch.no_grad(), torch.autocast(device_type=self.dev.type, dtype=torch.bfloat16, enabled=self.amp):
            if self.per_pixel:
                n = int(self.idx.numel())
                strip = {k: v.flatten(-2)[..., self.idx].unsqueeze(-2) for k, v in win.items()}
                step = max(1, self.pixel_chunk // b)
                pred = torch.cat([self.model({k: v[..., a:a + step] for k, v in strip.items()}).float()[:, 0]
                                  for a in range(0, n, step)], dim=-1)[:, 0, :]
                full = torch.full((b, self.valid.numel()), float("nan"), device=self.dev)
                full[:, self.idx] = pred
                y = full.view(b, *self.valid.shape)
            else:
                y = torch.where(self.valid, self.model(win).float()[:, 0], float("nan"))
        y = y * self.norm.target_std + self.norm.target_mean
        return y.clamp(*CLIP)  # NaN stays NaN


def predict_steps(forward: _Forward, rc: ResidentCube, steps, batch: int, out: np.ndarray):
    """Run ``forward`` over ``steps`` in batches of ``batch`` and write the region scenes into
    ``out`` ((len(steps), h, w) float32, host). On CUDA the device-to-host copy of each batch
    runs on a side stream into pinned buffers (two, alternating), overlapping the next batch."""
    torch = _torch()
    steps = np.asarray(steps)
    n = steps.size
    if forward.dev.type != "cuda":
        for a in range(0, n, batch):
            out[a:a + batch] = forward(rc, steps[a:a + batch]).cpu().numpy()
        return out
    h, w = rc.shape
    pinned, copy_stream = forward.buffers(min(batch, n), h, w)
    pending: list = [None, None]

    def flush(slot):
        p = pending[slot]
        if p is not None:
            ev, a, m = p
            ev.synchronize()
            out[a:a + m] = pinned[slot][:m].numpy()
            pending[slot] = None

    for j, a in enumerate(range(0, n, batch)):
        slot = j % 2
        flush(slot)
        y = forward(rc, steps[a:a + batch])
        m = y.shape[0]
        done = torch.cuda.Event()
        done.record()
        with torch.cuda.stream(copy_stream):
            copy_stream.wait_event(done)
            pinned[slot][:m].copy_(y, non_blocking=True)
            y.record_stream(copy_stream)
            ev = torch.cuda.Event()
            ev.record(copy_stream)
        pending[slot] = (ev, a, m)
    flush(0)
    flush(1)
    return out


# ------------------------------------------------------------------------------ training
class ResidentPatches:
    """Training batches cut on the device from a (normalised) training cube.

    Holds the cube's arrays, the target (standardised, 0 where missing) and its validity on
    ``device``; :meth:`sample` draws ``n`` patches uniformly among the (step, row, col) whose
    ``size`` x ``size`` window holds >= 4 finite targets inside ``mask`` (the distribution of
    the trainer's rejection sampling), :meth:`batch` gathers windows and targets.
    """

    def __init__(self, data, size: int, device, seed: int = 0):
        torch = _torch()
        cube = data.cube
        self.dev = torch.device(device)
        self.size = int(size)
        self.x3 = to_device(cube.x3, device)
        self.daily = to_device(cube.daily, device)
        self.weekly = to_device(cube.weekly, device)
        self.static = to_device(cube.static, device)
        self.day_index = torch.as_tensor(cube.day_index, dtype=torch.long, device=self.dev)
        finite = np.isfinite(data.target)
        self.finite = torch.as_tensor(finite, device=self.dev)
        self.y = to_device(np.where(finite, data.norm.norm_target(np.nan_to_num(data.target)), 0.0), device)
        self.steps = np.asarray(data.train_steps)
        self.gen = torch.Generator(device=self.dev)
        self.gen.manual_seed(int(seed))
        self._cand: dict = {}
        ar = torch.arange(self.size, device=self.dev)
        self._ar = ar
        self._ar3 = torch.arange(-T3 + 1, 1, device=self.dev)
        self._ard = torch.arange(-TD, 0, device=self.dev)
        self._arw = -7 * torch.arange(TW - 1, -1, -1, device=self.dev)
        self._ch = torch.arange(self.x3.shape[1], device=self.dev)
        self._sch = torch.arange(self.static.shape[0], device=self.dev)

    def candidates(self, mask: np.ndarray):
        """(K, 3) long device tensor of the valid (step, row, col) for ``mask`` (cached)."""
        key = mask.tobytes()
        hit = self._cand.get(key)
        if hit is not None:
            return hit
        torch = _torch()
        s = self.size
        m = torch.as_tensor(mask, device=self.dev)
        st = torch.as_tensor(self.steps, dtype=torch.long, device=self.dev)
        ok = (self.finite[st] & m).to(torch.int32)                       # (n, H, W)
        cs = torch.nn.functional.pad(ok.cumsum(1).cumsum(2), (1, 0, 1, 0))  # integral image
        cnt = cs[:, s:, s:] - cs[:, :-s, s:] - cs[:, s:, :-s] + cs[:, :-s, :-s]  # (n, H-s+1, W-s+1)
        k = torch.nonzero(cnt >= 4)
        if k.shape[0] == 0:
            raise InputError("no training patch with SMAP targets was found",
                             "the training period or region holds too few SMAP retrievals")
        k[:, 0] = st[k[:, 0]]
        self._cand[key] = k
        return k

    def sample(self, n: int, mask: np.ndarray):
        """``n`` random (step, row, col) triples (device tensor (n, 3))."""
        torch = _torch()
        k = self.candidates(mask)
        return k[torch.randint(0, k.shape[0], (n,), device=self.dev, generator=self.gen)]

    def batch(self, idx, mask: np.ndarray):
        """Windows (dict of device tensors (B, ..., size, size)), targets (B, 1, size, size)
        standardised and their mask, for patches ``idx`` ((B, 3) step, row, col)."""
        torch = _torch()
        idx = torch.as_tensor(idx, dtype=torch.long, device=self.dev)
        i, r, c = idx[:, 0], idx[:, 1], idx[:, 2]
        rows = r[:, None] + self._ar[None]    # (B, s)
        cols = c[:, None] + self._ar[None]
        i3 = (i[:, None] + self._ar3[None]).clamp_(0, self.x3.shape[0] - 1)
        d = self.day_index[i]
        idd = (d[:, None] + self._ard[None]).clamp_(0, self.daily.shape[0] - 1)
        iw = (d[:, None] + self._arw[None]).clamp_(0, self.daily.shape[0] - 1)
        ch = self._ch[None, None, :, None, None]
        R = rows[:, None, None, :, None]
        C = cols[:, None, None, None, :]
        win = {"x3h": self.x3[i3[:, :, None, None, None], ch, R, C],
               "xday": self.daily[idd[:, :, None, None, None], ch, R, C],
               "xweek": self.weekly[iw[:, :, None, None, None], ch, R, C],
               "static": self.static[self._sch[None, :, None, None], rows[:, None, :, None], cols[:, None, None, :]]}
        ri, ci = rows[:, :, None], cols[:, None, :]
        mt = torch.as_tensor(mask, device=self.dev)[ri, ci] & self.finite[i[:, None, None], ri, ci]
        y = torch.where(mt, self.y[i[:, None, None], ri, ci], 0.0)
        return win, y[:, None], mt[:, None]
