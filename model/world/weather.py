"""Hourly weather of the virtual TP: the truth's forcing and the reanalyses' own versions.

Precipitation is a *meta-Gaussian* stochastic generator (e.g. Bardossy & Plate 1992; Guillot &
Lebel 1999): a latent standard-normal field ``Z(x, t)``, correlated in space (two Gaussian
scales, about 15 and 40 km) and in time (AR(1), e-folding 5 h), advected eastward by the
westerlies, is turned into intensities by a local threshold ``z0(x, t)`` that sets the wet-hour
probability and a scale that sets the mean::

    P(x, t) = r(x, t) * max(Z - z0, 0) / m1(z0),   m1(z0) = phi(z0) - z0 (1 - Phi(z0))

so that E[P] = r exactly. The mean rate ``r`` = annual normal x monsoon seasonality x
afternoon/evening diurnal cycle x a slow synoptic (active/break) multiplier. Storm events,
their sizes and lifetimes emerge from the latent field.

Temperature: lapse rate on the REAL elevation + seasonal + diurnal (damped by cloud) +
synoptic anomaly + cooling in rain. Shortwave: solar geometry, elevation-dependent clear-sky
transmissivity, cloud attenuation, and (truth only) the slope/aspect incidence factor.

The ERA5-Land-like and SMAP-L4-like versions see the same weather through smoothing and their
own errors (precipitation from a smoothed latent field mixed with an independent error field,
a biased climatology, temperature on 30 km-smoothed terrain with a cold bias, no slope effect).
All fields are float32 1-D arrays over the simulated cells.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.fft as sfft
from scipy.special import ndtri

from .config import rng_for
from .static import StaticFields, gaussian_smooth_masked, smooth_noise

PAD_SHAPE = (160, 336)  # periodic FFT domain holding the 150 x 320 TP10 grid (+ a margin)
TWO_PI = np.float32(2 * np.pi)
OMEGA_D = TWO_PI / 24.0

#: TP-average share of annual precipitation per month (monsoon regime), Jan..Dec
MONSOON_MONTHLY = np.array([0.8, 1.2, 2.5, 4.0, 7.5, 15.5, 22.0, 20.0, 14.0, 5.5, 1.3, 0.7])
MONSOON_MONTHLY = MONSOON_MONTHLY / MONSOON_MONTHLY.sum()
#: westerly regime (western TP): flatter, with a winter-spring share
WESTERLY_MONTHLY = np.array([6.0, 7.0, 9.0, 9.0, 8.0, 8.0, 11.0, 11.0, 8.0, 7.0, 8.0, 8.0])
WESTERLY_MONTHLY = WESTERLY_MONTHLY / WESTERLY_MONTHLY.sum()

# Weather parameters (documented in docs/world.md)
PARAMS = dict(
    tau_z_h=5.0,          # latent rain field e-folding time, h
    # spatial scales (Gaussian sigma, 10 km cells) of the latent rain field and their weights:
    # rain systems of 30-60 km, so storms leave less unpredictable 10 km detail than the soils
    # and terrain do (issue 12; earlier 15/40 km, 0.6/0.4)
    rain_scales_cells=(3.0, 6.0),
    rain_scale_weights=(0.5, 0.5),
    adv_cells_h=(0.30, 0.04),  # eastward, northward drift of rain systems, cells (10 km) per h
    tau_s_h=96.0,         # synoptic (active/break monsoon) e-folding time, h
    sigma_s=0.55,         # log-std of the synoptic rate multiplier
    tau_t_h=72.0,         # synoptic temperature anomaly e-folding time, h
    amp_t_syn=2.5,        # K
    diurnal_rain=0.45,    # relative amplitude of the rain diurnal cycle, peak 18 LST
    rain_peak_lst=18.0,
    lapse=6.0,            # K km-1
    era_precip_bias=1.25, # ERA5-Land overestimates TP precipitation
    era_t_bias=-1.2,      # K, ERA5-Land cold bias on the TP
    era_smooth_cells=3.0, # ~30 km
    l4_smooth_cells=1.5,  # ~15 km
)


def _mid_month_interp(monthly: np.ndarray, doy: float) -> float:
    """Periodic linear interpolation of 12 monthly values placed at mid-months."""
    mids = (np.arange(12) + 0.5) * 365.25 / 12
    x = np.concatenate([mids - 365.25, mids, mids + 365.25])
    y = np.concatenate([monthly, monthly, monthly]) * 12
    return float(np.interp(doy, x, y))


class _SpectralAR:
    """Latent Gaussian fields on the padded grid, AR(1) in time, kept in Fourier space."""

    def __init__(self, rng, tau_h: float, sigmas: tuple, weights: tuple, adv=(0.0, 0.0)):
        ny, nx = PAD_SHAPE
        ky = 2 * np.pi * np.fft.fftfreq(ny)[:, None]
        kx = 2 * np.pi * np.fft.rfftfreq(nx)[None, :]
        k2 = kx ** 2 + ky ** 2
        filt = sum(w * np.exp(-0.5 * s * s * k2) for s, w in zip(sigmas, weights))
        self.k2 = k2
        rho = np.exp(-1.0 / tau_h)
        phase = np.exp(-1j * (kx * adv[0] + ky * adv[1]))
        # only modes that carry variance get noise (cheap for the smooth fields)
        self.active = np.flatnonzero(filt.ravel() > 1e-4 * filt.max())
        self.a = (rho * phase).astype(np.complex64).ravel()[self.active]
        self.rng = rng
        # calibrate the amplitude so the stationary field has unit variance
        cal = np.random.default_rng(0)
        xs = [sfft.irfft2(self._full(filt.ravel()[self.active] * self._xi(cal)), s=PAD_SHAPE) for _ in range(24)]
        scale = 1.0 / float(np.sqrt(np.mean([x.var() for x in xs])))
        self.filt = (filt.ravel()[self.active] * scale).astype(np.float32)
        self.b = np.float32(np.sqrt(1 - rho * rho))
        self._state = (self.filt * self._xi(rng)).astype(np.complex64)  # stationary start

    def _full(self, sub):
        ny, nx = PAD_SHAPE
        out = np.zeros(ny * (nx // 2 + 1), np.complex64)
        out[self.active] = sub
        return out.reshape(ny, nx // 2 + 1)

    def _xi(self, rng):
        return rng.standard_normal((self.active.size, 2), dtype=np.float32).view(np.complex64)[:, 0]

    def step(self):
        self._state = self.a * self._state + self.b * self.filt * self._xi(self.rng)
        return self.state

    @property
    def state(self):
        return self._full(self._state)

    def smooth_gain(self, sigma: float) -> tuple[np.ndarray, float]:
        """Gaussian smoothing in spectral space and the std of the smoothed unit field."""
        g = np.exp(-0.5 * sigma * sigma * self.k2).astype(np.float32)
        cal = np.random.default_rng(1)
        xs = [sfft.irfft2(g * self._full(self.filt * self._xi(cal)), s=PAD_SHAPE) for _ in range(24)]
        return g, float(np.sqrt(np.mean([x.var() for x in xs])))


class Weather:
    """Hourly forcing for the truth and for the two reanalysis-like models.

    ``step(t)`` returns the forcing averaged over the hour ending at ``t`` (UTC).
    """

    def __init__(self, st: StaticFields, seed: int):
        P = PARAMS
        self.st = st
        ny, nx = st.shape
        oy, ox = (PAD_SHAPE[0] - ny) // 2, (PAD_SHAPE[1] - nx) // 2
        r, c = np.unravel_index(st.cells, st.shape)
        self._pad_idx = (r + oy) * PAD_SHAPE[1] + (c + ox)
        rng = rng_for(seed, "weather")
        self.Z = _SpectralAR(rng, P["tau_z_h"], P["rain_scales_cells"], P["rain_scale_weights"], P["adv_cells_h"])
        self.E = _SpectralAR(rng, 8.0, (3.0, 8.0), (0.5, 0.5), P["adv_cells_h"])
        self.S = _SpectralAR(rng, P["tau_s_h"], (25.0,), (1.0,), (0.1, 0.0))
        self.T = _SpectralAR(rng, P["tau_t_h"], (35.0,), (1.0,), (0.2, 0.0))
        self.g_era, self.sd_era = self.Z.smooth_gain(P["era_smooth_cells"])
        self.g_l4, self.sd_l4 = self.Z.smooth_gain(P["l4_smooth_cells"])
        self._slow_prev = self._slow_next = None
        self._slow_t = None

        c1 = st.c
        self.lat = np.deg2rad(c1("lat2"))
        self.lon = c1("lon2")
        z = c1("elevation")
        self.z = z
        self.pressure = (101.325 * ((293.0 - 0.0065 * z) / 293.0) ** 5.26).astype(np.float32)  # kPa
        # --- precipitation climatologies (mm/h at the annual mean) -------------------
        pann = c1("precip_annual")
        self.west = c1("west_share")
        self.rate_true = pann / 8766.0
        ers = rng_for(seed, "weather", "reanalysis-errors")
        e_era = smooth_noise(ers, st.shape, 6.0)
        e_l4 = smooth_noise(ers, st.shape, 4.0)
        sm3 = gaussian_smooth_masked(st.precip_annual, st.sim_mask, P["era_smooth_cells"])
        sm15 = gaussian_smooth_masked(st.precip_annual, st.sim_mask, P["l4_smooth_cells"])
        self.rate_era = (c1(sm3) * P["era_precip_bias"] * np.exp(0.25 * c1(e_era) - 0.03) / 8766.0).astype(np.float32)
        self.rate_l4 = (c1(sm15) * np.exp(0.10 * c1(e_l4) - 0.005) / 8766.0).astype(np.float32)
        # --- temperature ---------------------------------------------------------------
        self.t_ann = c1("t_annual")
        self.t_amp = c1("t_season_amp")
        z_s = gaussian_smooth_masked(np.where(st.sim_mask, st.elevation, 0), st.sim_mask, P["era_smooth_cells"])
        self.t_ann_era = self.t_ann + P["lapse"] * (z - c1(z_s)) / 1000.0 + P["era_t_bias"]
        self.z_era = c1(z_s)
        self.pressure_era = (101.325 * ((293.0 - 0.0065 * self.z_era) / 293.0) ** 5.26).astype(np.float32)
        self.wet = (pann / (pann + 350.0)).astype(np.float32)
        # --- terrain for radiation -------------------------------------------------------
        s = np.deg2rad(c1("slope"))
        a = np.deg2rad(c1("aspect"))
        self.cos_s = np.cos(s)
        self.ss_ca = np.sin(s) * np.cos(a)
        self.ss_sa = np.sin(s) * np.sin(a)
        self.sky_view = (1 + self.cos_s) / 2
        self.sin_lat, self.cos_lat = np.sin(self.lat), np.cos(self.lat)
        self._z0_tab, self._im1_tab = self._wet_table()
        self.tau_clear = (0.70 + 0.03 * z / 1000.0).astype(np.float32)
        self.tau_clear_era = (0.70 + 0.03 * self.z_era / 1000.0).astype(np.float32)
        # LST = UTC + lon/15: per-cell phase of the diurnal cycles
        self._cl = np.cos(OMEGA_D * self.lon / 15.0).astype(np.float32)
        self._sl = np.sin(OMEGA_D * self.lon / 15.0).astype(np.float32)

    # -------------------------------------------------------------------------------------
    def _cells(self, field_pad: np.ndarray) -> np.ndarray:
        return field_pad.ravel()[self._pad_idx]

    def _slow(self, t: pd.Timestamp):
        """Synoptic fields, updated every 6 h and interpolated linearly in between."""
        t6 = t.floor("6h")
        if self._slow_t is None or t6 != self._slow_t:
            if self._slow_next is None:
                self._slow_prev = self._slow_draw()
            else:
                self._slow_prev = self._slow_next
            self._slow_next = self._slow_draw(steps=6)
            self._slow_t = t6
        w = np.float32((t - t6) / pd.Timedelta(hours=6))
        return [(1 - w) * p + w * n for p, n in zip(self._slow_prev, self._slow_next)]

    def _slow_draw(self, steps: int = 0):
        for _ in range(steps):
            self.S.step()
            self.T.step()
        x = sfft.irfft2(np.stack([self.S.state, self.T.state]), s=PAD_SHAPE, workers=1)
        return [self._cells(x[0]), self._cells(x[1])]

    @staticmethod
    def _wet_table():
        """Lookup tables over log(rate): threshold z0 and 1/m1(z0) of the meta-Gaussian."""
        lr = np.linspace(_LR0, _LR0 + _DLR * (_NLR - 1), _NLR)
        rate = np.exp(lr)
        p = np.clip(0.30 * rate / (rate + 0.08), 0.003, 0.35)
        z0 = -ndtri(p)
        m1 = np.exp(-0.5 * z0 * z0) / np.sqrt(2 * np.pi) - z0 * p
        return z0.astype(np.float32), (1.0 / m1).astype(np.float32)

    def _intensity(self, zf, rate):
        """Meta-Gaussian transform: wet probability from the mean rate, then intensities.

        p_wet = clip(0.3 r / (r + 0.08 mm/h), 0.003, 0.35); z0 = Phi^-1(1 - p_wet).
        """
        i = np.clip(((np.log(np.maximum(rate, 1e-12)) - _LR0) / _DLR).astype(np.int32), 0, _NLR - 1)
        z0 = self._z0_tab[i]
        return rate * np.maximum(zf - z0, 0) * self._im1_tab[i], z0

    def _lst_cos(self, utc_h: float, phase_h: float) -> np.ndarray:
        """cos(2 pi (LST - phase) / 24) per cell, LST = UTC + lon / 15."""
        a = OMEGA_D * (utc_h - phase_h)
        return np.float32(np.cos(a)) * self._cl - np.float32(np.sin(a)) * self._sl

    def _lst_sin(self, utc_h: float, phase_h: float) -> np.ndarray:
        a = OMEGA_D * (utc_h - phase_h)
        return np.float32(np.sin(a)) * self._cl + np.float32(np.cos(a)) * self._sl

    def _shortwave(self, doy: float, utc_h: float, cloud, cloud_era):
        """Solar geometry (mid-hour: cos h and sin h of the hour angle h = 2 pi (LST - 12) / 24)
        and the shortwave of the truth and of the reanalyses: (sw, sw_era, slope_factor)."""
        decl = np.deg2rad(23.44) * np.sin(2 * np.pi * (284 + doy) / 365.0)
        sd, cd = np.float32(np.sin(decl)), np.float32(np.cos(decl))
        cos_h = self._lst_cos(utc_h, 12.0)
        sin_h = self._lst_sin(utc_h, 12.0)
        cosz = self.sin_lat * sd + self.cos_lat * cd * cos_h
        e0 = np.float32(1361.0 * (1 + 0.033 * np.cos(2 * np.pi * doy / 365.0)))
        toa = e0 * np.maximum(cosz, 0.0)
        sw = toa * self.tau_clear * (1 - 0.72 * cloud)
        sw_era = toa * self.tau_clear_era * (1 - 0.72 * cloud_era)
        # incidence on the slope (truth only): sinZ cos(az - aspect) = x cos(asp) + y sin(asp)
        xa = sd * self.cos_lat - cd * self.sin_lat * cos_h
        ya = -cd * sin_h
        cos_i = cosz * self.cos_s + xa * self.ss_ca + ya * self.ss_sa
        kd = 0.15 + 0.7 * cloud
        czc = np.maximum(cosz, 0.02)
        slope_factor = np.where(
            cosz > 0.02,
            (1 - kd) * np.minimum(np.maximum(cos_i, 0) / czc, 4.0) + kd * self.sky_view,
            np.float32(1.0))
        return sw, sw_era, slope_factor

    def step(self, t: pd.Timestamp) -> dict:
        P = PARAMS
        tm = t - pd.Timedelta(minutes=30)            # mid-hour for the averages
        doy = tm.day_of_year + (tm.hour + tm.minute / 60.0) / 24.0
        utc_h = tm.hour + tm.minute / 60.0

        zs = self.Z.step()
        es = self.E.step()
        fields = sfft.irfft2(np.stack([zs, zs * self.g_era, zs * self.g_l4, es]), s=PAD_SHAPE, workers=1)
        fl = fields.reshape(4, -1)[:, self._pad_idx]
        z_t = fl[0]
        z_era = np.float32(np.sqrt(0.7) / self.sd_era) * fl[1] + np.float32(np.sqrt(0.3)) * fl[3]
        z_l4 = np.float32(np.sqrt(0.9) / self.sd_l4) * fl[2] + np.float32(np.sqrt(0.1)) * fl[3]
        s_syn, t_syn = self._slow(t)

        # seasonal x diurnal x synoptic rate
        mon = _mid_month_interp(MONSOON_MONTHLY, doy)
        wst = _mid_month_interp(WESTERLY_MONTHLY, doy)
        season = np.float32(mon) + self.west * np.float32(wst - mon)
        diurnal = 1.0 + np.float32(P["diurnal_rain"]) * self._lst_cos(utc_h, P["rain_peak_lst"])
        syn = np.exp(np.float32(P["sigma_s"]) * s_syn - np.float32(0.5 * P["sigma_s"] ** 2))
        mod = season * diurnal * syn
        precip, z0 = self._intensity(z_t, self.rate_true * mod)
        precip_era, z0e = self._intensity(z_era, self.rate_era * mod)
        precip_l4, _ = self._intensity(z_l4, self.rate_l4 * mod)

        c_season = np.float32(0.4 * (mon - 1 / 12))
        cloud = np.clip(0.05 + 0.85 * _phi(z_t - z0 + 1.2) + c_season, 0, 1)
        cloud_era = np.clip(0.05 + 0.85 * _phi(z_era - z0e + 1.2) + c_season, 0, 1)

        # temperature (degC)
        seas_t = np.float32(-np.cos(2 * np.pi * (doy - 15.0) / 365.25))
        diur_t = self._lst_cos(utc_h, 14.5)
        t_syn_k = np.float32(P["amp_t_syn"]) * t_syn - 0.8 * s_syn
        t2m = (self.t_ann + self.t_amp * seas_t + (2.5 + 4.5 * (1 - cloud)) * diur_t + t_syn_k
               - 1.5 * np.minimum(precip, 1.0))
        t2m_era = (self.t_ann_era + self.t_amp * seas_t + (2.5 + 4.5 * (1 - cloud_era)) * diur_t
                   + t_syn_k - 1.5 * np.minimum(precip_era, 1.0))

        # humidity
        seas_w = np.float32(min(mon * 12 / 2.6, 1.0))
        rh = np.clip(0.28 + 0.45 * seas_w * self.wet + 0.3 * _phi(z_t - z0 + 0.5) - 0.15 * diur_t, 0.08, 0.99)
        rh_era = np.clip(0.30 + 0.45 * seas_w * self.wet + 0.3 * _phi(z_era - z0e + 0.5) - 0.13 * diur_t, 0.08, 0.99)
        ea = rh * _esat(t2m)
        ea_era = rh_era * _esat(t2m_era)

        sw, sw_era, slope_factor = self._shortwave(doy, utc_h, cloud, cloud_era)

        return {
            "truth": dict(precip=precip, t2m=t2m, sw=sw, slope_factor=slope_factor, cloud=cloud,
                          ea=ea, pressure=self.pressure),
            "era": dict(precip=precip_era, t2m=t2m_era, sw=sw_era, slope_factor=None,
                        cloud=cloud_era, ea=ea_era, pressure=self.pressure_era),
            "l4": dict(precip=precip_l4, t2m=t2m_era + np.float32(-P["era_t_bias"] * 0.5), sw=sw_era,
                       slope_factor=None, cloud=cloud_era, ea=ea_era, pressure=self.pressure_era),
        }


_LR0, _DLR, _NLR = float(np.log(1e-7)), 0.005, 4400


def _phi(x):
    """Standard normal CDF, logistic approximation (max error 0.01)."""
    return 1.0 / (1.0 + np.exp(np.float32(-1.702) * x))


def _esat(t_c):
    """Saturation vapour pressure over water, kPa (Tetens/Magnus)."""
    return 0.6108 * np.exp(17.27 * t_c / (t_c + 237.3))


def dewpoint(ea_kpa):
    """Dew point (degC) from vapour pressure (kPa), inverse Magnus."""
    x = np.log(np.maximum(ea_kpa, 1e-4) / 0.6108)
    return (237.3 * x / (17.27 - x)).astype(np.float32)
