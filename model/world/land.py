"""A two-layer land water and heat balance, vectorised over cells (float32, hourly steps).

State per cell: total water of the 0-5 cm surface layer ``w1`` and of the 5-50 cm root zone
``w2`` (volumetric, m3 m-3, liquid + ice), snow water equivalent ``swe`` (mm), skin, layer-1
and layer-2 temperatures (K). Each hourly step (equations in ``docs/world.md``):

1. rain/snow partition by air temperature (all snow below -0.5 C, all rain above 2.5 C);
2. net radiation: shortwave x (1 - albedo) x slope/aspect incidence factor + Brutsaert
   longwave with cloud; Priestley-Taylor potential evaporation with the pressure of the
   cell's elevation;
3. snow: accumulation, degree-day + radiation melt, sublimation;
4. temperatures: skin from a bulk energy balance (sensible heat = available energy - latent
   heat); layer 1 relaxes to the skin (3 h) and to layer 2; layer 2 to layer 1 (4 days);
   snow insulates;
5. freezing: liquid water is capped by the supercooled-water curve (Campbell matric
   potential = freezing-point depression, as CLM): only liquid water drains, evaporates or
   is seen by L-band radiometers and dielectric probes; ice impedes flow (CLM, 10^(-6 F_ice));
6. infiltration: saturation-excess runoff (VIC-like, steeper terrain sheds more) and
   infiltration-excess runoff (Ks-based capacity), surplus to layer 2 then runoff;
7. evapotranspiration: bare-soil evaporation from layer 1 (Lee & Pielke stress), transpiration
   from both layers (wilting point to 75 % field capacity stress), weighted by vegetation
   fraction and snow cover;
8. gravity drainage with the Campbell conductivity K = Ks (theta/theta_s)^(2b+3), integrated
   EXACTLY over the step (stable for any Ks), 1 -> 2 -> deep;
9. capillary/diffusive exchange between the layers (implicit relaxation, 30-60 h);
10. bounds: theta_r <= liquid <= total <= theta_s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .static import SoilParams

SIGMA = np.float32(5.670e-8)
LAMBDA_V = 2.45e6   # J kg-1
T0 = np.float32(273.15)
LF_G = np.float32(3.337e5 / 9.81)  # L_f / g, m


@dataclass
class LandParams:
    """Per-cell parameters of one model instance (float32 1-D arrays)."""

    soil1: SoilParams
    soil2: SoilParams
    veg: np.ndarray        # vegetation fraction
    albedo: np.ndarray     # snow-free albedo
    slope: np.ndarray      # degrees
    d1: float = 50.0       # layer thicknesses, mm
    d2: float = 450.0
    tau_exchange: np.ndarray | float = 40.0  # h
    pt_alpha: float = 1.26
    #: standardised topographic wetness (> 0 convergent hollows and valley floors, < 0 ridges and
    #: divergent slopes); None: no lateral redistribution (ERA5-Land has none)
    wetness: np.ndarray | None = None
    lateral_gain: float = 0.0      # upslope water received per unit wetness, x own drainage + runoff
    lateral_tau_h: float = 72.0    # e-folding time of the subsurface lateral store
    lateral_loss_h: float = 24.0   # e-folding time of lateral drainage above field capacity at wetness -1
    intercept_mm: float = 0.0      # canopy interception capacity at full vegetation cover, mm


@dataclass
class LandState:
    w1: np.ndarray
    w2: np.ndarray
    swe: np.ndarray
    tskin: np.ndarray
    t1: np.ndarray
    t2: np.ndarray
    liq1: np.ndarray
    liq2: np.ndarray
    ice1: np.ndarray
    ice2: np.ndarray
    evap: np.ndarray       # mm over the last step (evaporation + transpiration + sublimation)
    runoff: np.ndarray     # mm over the last step
    lat_store: np.ndarray  # mm, subsurface water on its way down-slope into this cell
    canopy: np.ndarray     # mm, intercepted water on the vegetation

    def copy(self) -> "LandState":
        return LandState(**{k: v.copy() for k, v in self.__dict__.items()})


def _liquid_max(t_k, sp: SoilParams):
    """Supercooled liquid water cap at soil temperature t_k (K); theta_s above freezing.

    theta_liq,max = theta_s (psi_f / psi_s)^(-1/b),  psi_f = L_f (T_f - T) / (g T)  (CLM 4.5).
    Computed only for the cells below freezing.
    """
    out = sp.theta_s.copy()
    fz = np.flatnonzero(t_k < T0)
    if fz.size:
        t = t_k[fz]
        psi = LF_G * (T0 - t) / t * np.float32(1000.0)      # mm, magnitude
        out[fz] = sp.theta_s[fz] * np.power(np.maximum(psi / sp.psi_s[fz], 1.0), -1.0 / sp.b[fz])
    return out


def _drain(theta, ks, sp: SoilParams, d_mm, dt_h=1.0):
    """Exact solution over dt of d(theta)/dt = -Ks/d (theta/theta_s)^(2b+3).

    With x = theta/theta_s and c = 2b+3:  x(t+dt) = x [1 + (c-1) k x^(c-1)]^(-1/(c-1)),
    k = Ks dt / (d theta_s); this form cannot overflow in float32.
    """
    c1 = 2.0 * sp.b + 2.0                                      # c - 1
    x = np.minimum(theta / sp.theta_s, 1.0)
    k = ks * np.float32(dt_h / d_mm) / sp.theta_s
    y = x * np.power(1.0 + c1 * k * np.power(x, c1), -1.0 / c1)
    return y * sp.theta_s


C_SOLID = np.float32(2.0e6)    # volumetric heat capacity of the soil solids, J m-3 K-1
C_WATER = np.float32(4.18e6)
C_ICE = np.float32(1.9e6)
L_RHO = np.float32(3.337e5 * 1000.0)  # latent heat of fusion per unit volumetric water, J m-3


def _phase_change(t_star, liq, ice, sp: SoilParams):
    """Freeze or thaw after a sensible-heat step, conserving energy (a 'zero curtain').

    Cooling below 0 C freezes liquid water (down to the supercooled cap and never below
    theta_r), the latent heat warming the layer back: T = T* + L rho f / C. Warming above 0 C
    melts ice first: T = T* - L rho m / C. Returns (T, liquid, ice).
    """
    c = C_SOLID * (1 - sp.theta_s) + C_WATER * liq + C_ICE * ice
    t = t_star.copy()
    liq = liq.copy()
    ice = ice.copy()
    cold = np.flatnonzero((t_star < T0) & (liq > sp.theta_r))
    if cold.size:
        ts = t_star[cold]
        sub = SoilParams(*(getattr(sp, k)[cold] for k in ("theta_s", "theta_fc", "theta_wp", "theta_r",
                                                           "b", "psi_s", "ks")))
        cap = np.maximum(_liquid_max(ts, sub), sub.theta_r)
        f_cap = np.maximum(liq[cold] - cap, 0.0)
        f_energy = c[cold] * (T0 - ts) / L_RHO
        fr = np.minimum(f_cap, f_energy)
        t[cold] = ts + L_RHO * fr / c[cold]
        liq[cold] -= fr
        ice[cold] += fr
    warm = np.flatnonzero((t_star > T0) & (ice > 0))
    if warm.size:
        ts = t_star[warm]
        m = np.minimum(ice[warm], c[warm] * (ts - T0) / L_RHO)
        t[warm] = ts - L_RHO * m / c[warm]
        liq[warm] += m
        ice[warm] -= m
    return t, liq, ice


class LandModel:
    """One land-model instance (truth, ERA5-Land-like or SMAP-L4-like)."""

    def __init__(self, params: LandParams, init_wetness: np.ndarray, t_init_c: np.ndarray):
        self.p = params
        s1, s2 = params.soil1, params.soil2
        f = np.clip(init_wetness, 0.05, 0.95).astype(np.float32)
        w1 = (s1.theta_wp + f * (s1.theta_fc - s1.theta_wp)).astype(np.float32)
        w2 = (s2.theta_wp + f * (s2.theta_fc - s2.theta_wp)).astype(np.float32)
        tk = (t_init_c + T0).astype(np.float32)
        n = w1.size
        z = np.zeros(n, np.float32)
        # start in equilibrium with the initial temperature (frozen where below 0 C)
        liq1 = np.where(tk < T0, np.maximum(np.minimum(w1, _liquid_max(tk, s1)), np.minimum(s1.theta_r, w1)), w1)
        liq2 = np.where(tk < T0, np.maximum(np.minimum(w2, _liquid_max(tk, s2)), np.minimum(s2.theta_r, w2)), w2)
        self.s = LandState(w1=w1, w2=w2, swe=z.copy(), tskin=tk.copy(), t1=tk.copy(), t2=tk.copy(),
                           liq1=liq1.astype(np.float32), liq2=liq2.astype(np.float32),
                           ice1=(w1 - liq1).astype(np.float32), ice2=(w2 - liq2).astype(np.float32),
                           evap=z.copy(), runoff=z.copy(), lat_store=z.copy(), canopy=z.copy())
        if params.wetness is not None:
            wt = np.asarray(params.wetness, np.float32)
            self._conv = (params.lateral_gain * np.clip(wt, 0.0, 3.0)).astype(np.float32)
            div = np.clip(-wt, 0.0, 2.5)
            self._k_loss = (1 - np.exp(-div / params.lateral_loss_h)).astype(np.float32)
            self._k_lat = np.float32(1 - np.exp(-1.0 / params.lateral_tau_h))
        else:
            self._conv = None
        self._cap = (params.intercept_mm * params.veg).astype(np.float32)
        self._rough = np.clip(0.5 + params.slope / 15.0, 0.5, 3.0).astype(np.float32)
        self._k_exch = (1 - np.exp(-1.0 / np.broadcast_to(np.asarray(params.tau_exchange, np.float32), (n,))))

    def step(self, f: dict, dt: float = 1.0) -> LandState:
        """One step of ``dt`` hours with the forcing ``f``; the numbered stages (module
        docstring) run in this order, each in its own method, so the arithmetic (and every
        float32 result) is that of one long kernel."""
        p, s = self.p, self.s
        s1, s2 = p.soil1, p.soil2
        d1, d2 = np.float32(p.d1), np.float32(p.d2)
        tc = f["t2m"]
        ta = tc + T0
        snow, rain, canopy = self._phase(f["precip"], tc)
        scf, sw_abs, rn, pet = self._radiation(f, tc, ta, dt)
        melt, subl, swe = self._snow(tc, sw_abs, pet, scf, snow, dt)

        # 5 (first): liquid and ice of the current water
        ice1, ice2 = s.ice1, s.ice2
        liq1 = s.w1 - ice1
        liq2 = s.w2 - ice2
        imp1 = np.power(np.float32(10.0), -6.0 * ice1 / s1.theta_s)
        imp2 = np.power(np.float32(10.0), -6.0 * ice2 / s2.theta_s)

        w1, w2, liq1, liq2, runoff, q_se, q_ie = self._infiltrate(rain + melt, ice1, liq1, liq2, imp1, imp2,
                                                                  d1, d2, dt)
        w1, w2, liq1, liq2, canopy, et = self._evapotranspire(pet, scf, canopy, subl, w1, w2, liq1, liq2, d1, d2)
        w1, w2, liq1, liq2, dr2 = self._drain_layers(w1, w2, liq1, liq2, imp1, imp2, d1, d2, dt)
        lat_store = s.lat_store
        if self._conv is not None:
            w1, w2, liq1, liq2, lat_store, runoff = self._lateral(w1, w2, liq1, liq2, lat_store, runoff,
                                                                  dr2 + q_se + q_ie, imp1, imp2, d1, d2)
        w1, w2, liq1, liq2 = self._exchange(w1, w2, liq1, liq2, imp1, imp2, d1, d2)
        tskin, t1, t2, liq1, ice1, liq2, ice2 = self._temperatures(et, rn, ta, scf, swe, liq1, ice1, liq2,
                                                                   ice2, dt)

        # 10. bounds
        w1 = np.clip(w1, s1.theta_r, s1.theta_s)
        w2 = np.clip(w2, s2.theta_r, s2.theta_s)
        ice1 = np.clip(ice1, 0, w1 - np.minimum(s1.theta_r, w1))
        ice2 = np.clip(ice2, 0, w2 - np.minimum(s2.theta_r, w2))
        liq1 = w1 - ice1
        liq2 = w2 - ice2

        self.s = LandState(w1=w1, w2=w2, swe=swe, tskin=tskin, t1=t1, t2=t2, liq1=liq1, liq2=liq2,
                           ice1=ice1, ice2=ice2, evap=et, runoff=runoff, lat_store=lat_store,
                           canopy=canopy)
        return self.s

    def _phase(self, P, tc):
        """1. rain/snow partition; canopy interception (rain only) fills the canopy store
        first, it evaporates below. Returns (snow, rain, canopy)."""
        p, s = self.p, self.s
        fsnow = np.clip((2.5 - tc) / 3.0, 0.0, 1.0)
        snow = P * fsnow
        rain = P - snow
        canopy = s.canopy
        if p.intercept_mm > 0:
            ic = np.minimum(rain, np.maximum(self._cap - canopy, 0.0))
            rain = rain - ic
            canopy = canopy + ic
        return snow, rain, canopy

    def _radiation(self, f: dict, tc, ta, dt: float):
        """2. radiation and potential evaporation: (snow cover fraction, absorbed shortwave,
        net radiation, potential evaporation in mm)."""
        p, s = self.p, self.s
        scf = s.swe / (s.swe + 5.0)
        albedo = p.albedo * (1 - scf) + 0.65 * scf
        sw = f["sw"] if f["slope_factor"] is None else f["sw"] * f["slope_factor"]
        sw_abs = sw * (1 - albedo)
        eps_clear = 1.24 * np.power(np.maximum(10.0 * f["ea"], 0.05) / ta, 1.0 / 7.0)
        eps_a = eps_clear * (1 - f["cloud"]) + 0.97 * f["cloud"]
        lw_net = -SIGMA * ta ** 4 * (1 - eps_a)
        rn = sw_abs + lw_net
        es = 0.6108 * np.exp(17.27 * tc / (tc + 237.3))
        delta = 4098.0 * es / (tc + 237.3) ** 2
        gamma = 0.000665 * f["pressure"]
        pet = np.maximum(p.pt_alpha * delta / (delta + gamma) * 0.9 * rn, 0.0) * np.float32(3600.0 * dt / LAMBDA_V)
        return scf, sw_abs, rn, pet

    def _snow(self, tc, sw_abs, pet, scf, snow, dt: float):
        """3. snow: accumulation, melt, sublimation; returns (melt, sublimation, new swe)."""
        s = self.s
        melt = np.where(s.swe > 0, np.maximum(0.12 * tc + 0.0006 * sw_abs * (tc > -2), 0.0) * dt, 0.0)
        subl = 0.3 * pet * scf
        swe_avail = s.swe + snow
        melt = np.minimum(melt, swe_avail)
        subl = np.minimum(subl, swe_avail - melt)
        swe = swe_avail - melt - subl
        return melt, subl, swe

    def _infiltrate(self, w_in, ice1, liq1, liq2, imp1, imp2, d1, d2, dt: float):
        """6. infiltration and runoff: (w1, w2, liq1, liq2, runoff, saturation-excess runoff,
        infiltration-excess runoff)."""
        s, s1, s2 = self.s, self.p.soil1, self.p.soil2
        sat1 = np.clip((s.w1 - s1.theta_r) / (s1.theta_s - s1.theta_r), 0, 1)
        fsat = np.clip(sat1 ** 4 * self._rough * 0.5 + ice1 / s1.theta_s, 0, 1)
        q_se = w_in * fsat
        icap = s1.ks * imp1 * (1 + 3.0 * (1 - sat1)) * dt
        infil = np.minimum(w_in - q_se, icap)
        q_ie = w_in - q_se - infil
        room1 = (s1.theta_s - s.w1) * d1
        to1 = np.minimum(infil, room1)
        w1 = s.w1 + to1 / d1
        room2 = (s2.theta_s - s.w2) * d2
        to2 = np.minimum(infil - to1, room2 * imp2)
        w2 = s.w2 + to2 / d2
        runoff = q_se + q_ie + (infil - to1 - to2)
        liq1 = liq1 + to1 / d1
        liq2 = liq2 + to2 / d2
        return w1, w2, liq1, liq2, runoff, q_se, q_ie

    def _evapotranspire(self, pet, scf, canopy, subl, w1, w2, liq1, liq2, d1, d2):
        """7. evapotranspiration (only from liquid water; none under full snow); intercepted
        water evaporates first, at the potential rate over the vegetated part. Returns
        (w1, w2, liq1, liq2, canopy, total evaporation)."""
        p, s1, s2 = self.p, self.p.soil1, self.p.soil2
        free = (1 - scf)
        e_can = np.zeros_like(pet)
        if p.intercept_mm > 0:
            e_can = np.minimum(canopy, pet * p.veg * free)
            canopy = canopy - e_can
        pet_t = np.maximum(pet - e_can / np.maximum(p.veg, 0.05), 0.0)
        beta_s = np.where(liq1 >= s1.theta_fc, 1.0,
                          0.25 * (1 - np.cos(np.pi * np.clip((liq1 - s1.theta_r) / (s1.theta_fc - s1.theta_r), 0, 1))) ** 2)
        e_soil = pet * (1 - p.veg) * free * beta_s
        e_soil = np.minimum(e_soil, np.maximum(liq1 - s1.theta_r, 0) * d1)
        beta_t = np.clip((liq2 - s2.theta_wp) / (0.75 * s2.theta_fc - s2.theta_wp), 0, 1)
        tr = pet_t * p.veg * free * beta_t
        tr1 = np.minimum(0.15 * tr, np.maximum(liq1 - s1.theta_r, 0) * d1 - e_soil)
        tr2 = np.minimum(0.85 * tr, np.maximum(liq2 - 0.5 * s2.theta_wp, 0) * d2)
        w1 = w1 - (e_soil + tr1) / d1
        liq1 = liq1 - (e_soil + tr1) / d1
        w2 = w2 - tr2 / d2
        liq2 = liq2 - tr2 / d2
        et = e_soil + tr1 + tr2 + subl + e_can
        return w1, w2, liq1, liq2, canopy, et

    def _drain_layers(self, w1, w2, liq1, liq2, imp1, imp2, d1, d2, dt: float):
        """8. gravity drainage (liquid only, impeded by ice): (w1, w2, liq1, liq2, deep drainage)."""
        s1, s2 = self.p.soil1, self.p.soil2
        new1 = _drain(liq1, s1.ks * np.minimum(imp1, imp2), s1, d1, dt)   # frozen subsoil perches water
        dr1 = np.minimum((liq1 - new1) * d1, np.maximum((s2.theta_s - w2) * d2, 0))
        w1 = w1 - dr1 / d1
        liq1 = liq1 - dr1 / d1
        w2 = w2 + dr1 / d2
        liq2 = liq2 + dr1 / d2
        new2 = _drain(liq2, s2.ks * imp2, s2, d2, dt)
        dr2 = (liq2 - new2) * d2
        w2 = w2 - dr2 / d2
        liq2 = liq2 - dr2 / d2
        return w1, w2, liq1, liq2, dr2

    def _lateral(self, w1, w2, liq1, liq2, lat_store, runoff, outflow, imp1, imp2, d1, d2):
        """8b. lateral redistribution by terrain (TOPMODEL-like, per cell): convergent cells
        receive the drainage and runoff (``outflow``) of their upslope area (taken as their own
        times the wetness gain: neighbours share the weather) through a slow subsurface store
        that seeps into the root zone, then the surface layer; divergent cells lose the water
        above field capacity sideways. Not mass-conserving across cells (the upslope source
        is implicit); only liquid water moves. Returns (w1, w2, liq1, liq2, store, runoff)."""
        s1, s2 = self.p.soil1, self.p.soil2
        lat_store = lat_store + self._conv * outflow * imp2
        rel = lat_store * self._k_lat * imp2
        lat_store = lat_store - rel
        # seepage wets the surface layer directly (a third) and the root zone
        in1 = np.minimum(rel / 3.0, np.maximum((s1.theta_s - w1) * d1, 0))
        in2 = np.minimum(rel - in1, np.maximum((s2.theta_s - w2) * d2, 0))
        runoff = runoff + (rel - in2 - in1)
        w2 = w2 + in2 / d2
        liq2 = liq2 + in2 / d2
        w1 = w1 + in1 / d1
        liq1 = liq1 + in1 / d1
        l1 = np.maximum(liq1 - s1.theta_fc, 0) * self._k_loss * imp1
        l2 = np.maximum(liq2 - s2.theta_fc, 0) * self._k_loss * imp2
        w1, liq1 = w1 - l1, liq1 - l1
        w2, liq2 = w2 - l2, liq2 - l2
        runoff = runoff + l1 * d1 + l2 * d2
        return w1, w2, liq1, liq2, lat_store, runoff

    def _exchange(self, w1, w2, liq1, liq2, imp1, imp2, d1, d2):
        """9. diffusive exchange between the layers (liquid water, implicit)."""
        s1, s2 = self.p.soil1, self.p.soil2
        k = self._k_exch * imp1 * imp2
        x = (liq2 - liq1) * k * (d1 * d2 / (d1 + d2))          # mm, upward if positive
        x = np.clip(x, -np.maximum(liq1 - s1.theta_r, 0) * d1, np.maximum(liq2 - s2.theta_r, 0) * d2)
        x = np.minimum(x, (s1.theta_s - w1) * d1)
        w1 = w1 + x / d1
        liq1 = liq1 + x / d1
        w2 = w2 - x / d2
        liq2 = liq2 - x / d2
        return w1, w2, liq1, liq2

    def _temperatures(self, et, rn, ta, scf, swe, liq1, ice1, liq2, ice2, dt: float):
        """4. temperatures: skin from the energy balance with this step's evaporation, then the
        layers (implicit relaxation), then freezing / thawing with latent heat. Returns
        (tskin, t1, t2, liq1, ice1, liq2, ice2)."""
        s, s1, s2 = self.s, self.p.soil1, self.p.soil2
        le = et * np.float32(LAMBDA_V / (3600.0 * dt))
        h_coef = np.where(rn > 0, np.float32(18.0), np.float32(20.0))
        tskin = ta + np.clip((0.9 * rn - le) / h_coef, -8.0, 30.0)
        tskin = np.where(scf > 0.5, np.minimum(tskin, T0), tskin)
        ins = 1.0 + 8.0 * np.minimum(swe / 30.0, 1.0)       # snow insulation of layer 1
        a1 = dt / (3.0 * ins)
        a12 = dt / 24.0
        t1 = (s.t1 + a1 * tskin + a12 * s.t2) / (1 + a1 + a12)
        t1, liq1, ice1 = _phase_change(t1, liq1, ice1, s1)
        a2 = dt / 240.0
        t2 = (s.t2 + a2 * t1) / (1 + a2)
        t2, liq2, ice2 = _phase_change(t2, liq2, ice2, s2)
        return tskin, t1, t2, liq1, ice1, liq2, ice2

    def nudge(self, idx: np.ndarray, incr1: np.ndarray, frac2: float = 0.3) -> None:
        """Add an analysis increment (m3 m-3) to the surface layer of cells ``idx`` and
        ``frac2`` of it to the root zone (the assimilation of the L4-like model); ice is kept."""
        s, p = self.s, self.p
        for w, ice, liq, inc, sp in ((s.w1, s.ice1, s.liq1, incr1, p.soil1),
                                     (s.w2, s.ice2, s.liq2, frac2 * incr1, p.soil2)):
            w[idx] = np.clip(w[idx] + inc, np.maximum(sp.theta_r[idx], ice[idx]), sp.theta_s[idx])
            liq[idx] = w[idx] - ice[idx]
