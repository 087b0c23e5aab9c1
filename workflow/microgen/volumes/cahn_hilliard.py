"""Cahn–Hilliard spinodal decomposition of a binary polymer blend (donor/acceptor), 3D periodic.

Model
-----
``φ(x, t)`` is the local volume fraction of the component that thresholds to phase id 1
(the *acceptor*, GraSPI "white"); ``1 − φ`` is the donor (phase id 0, "black"). The free
energy per unit volume (in units of kT per lattice site, lengths in voxels) is Flory–Huggins
plus a square-gradient term::

    F[φ] = ⟨ f(φ) + κ/2 |∇φ|² ⟩,
    f(φ) = φ/N_A ln φ + (1−φ)/N_B ln(1−φ) + χ φ(1−φ),

and the dynamics conserve mass::

    ∂φ/∂t = M ∇² μ,   μ = f'(φ) − κ ∇²φ,
    f'(φ) = (ln φ + 1)/N_A − (ln(1−φ) + 1)/N_B + χ (1 − 2φ).

With N_A = N_B = 1 (the default) the critical point is χ_c = 2 at φ = 0.5 and the spinodal
is χ_s(φ) = ½ [1/(N_A φ) + 1/(N_B (1−φ))]; a blend with χ > χ_s(φ₀) decomposes, one with
χ < χ_s(φ₀) stays (nearly) homogeneous. The published microgen3D data use χ ≈ 2.2–2.35 and
φ ≈ 0.5–0.56, i.e. the same N = 1 convention. (The paper solves this with FEM; we use a
spectral scheme on a periodic grid, which is a documented substitute, not a replica.)

Scheme
------
Semi-implicit Fourier spectral with linear stabilisation (Zhu et al. 1999; Shen & Yang
2010): the stiff κ∇⁴ term and a stabilising ``A ∇²`` term are implicit, the nonlinear
chemical potential explicit::

    φ̂ⁿ⁺¹ (1 + Δt M (A k² + κ k⁴)) = φ̂ⁿ (1 + Δt M A k²) − Δt M k² \\widehat{f'(φⁿ)}.

The k = 0 mode is untouched, so the mean of φ is conserved to round-off every step. With
``A ≥ ½ max|f''|`` over the compositions visited the scheme is energy stable for any Δt; the
default ``A`` is ``max|f''|`` over the interval between the two minima of f (the
equilibrium compositions, for the symmetric blend exactly the binodal), a 2× margin over
that bound. φ is clipped into ``(ε, 1−ε)`` only where logarithms are taken.

Snapshots are saved at chosen steps — by default ``n_snapshots`` log-spaced steps — and
carry ``log_time = log10(step · Δt)`` (dimensionless time in units of voxel²/(M kT)).
Everything is deterministic given ``seed``: the initial condition is ``φ₀`` plus zero-mean
uniform noise of amplitude ``noise`` drawn from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from scipy import fft as sfft


def chi_critical(n_a: float = 1.0, n_b: float = 1.0) -> float:
    """Critical interaction parameter χ_c = ½ (N_A^-½ + N_B^-½)²."""
    return 0.5 * (n_a**-0.5 + n_b**-0.5) ** 2


def chi_spinodal(phi: float, n_a: float = 1.0, n_b: float = 1.0) -> float:
    """χ on the spinodal at composition ``phi``: f''(φ) = 0."""
    return 0.5 * (1.0 / (n_a * phi) + 1.0 / (n_b * (1.0 - phi)))


def free_energy_density(phi, chi: float, n_a: float = 1.0, n_b: float = 1.0, eps: float = 1e-6):
    """Flory–Huggins f(φ) (φ clipped into (ε, 1−ε) for the logarithms)."""
    p = np.clip(phi, eps, 1.0 - eps)
    return p / n_a * np.log(p) + (1.0 - p) / n_b * np.log1p(-p) + chi * phi * (1.0 - phi)


def chemical_potential(phi, chi: float, n_a: float = 1.0, n_b: float = 1.0, eps: float = 1e-6):
    """f'(φ) of the Flory–Huggins free energy (φ clipped for the logarithms)."""
    p = np.clip(phi, eps, 1.0 - eps)
    return (np.log(p) + 1.0) / n_a - (np.log1p(-p) + 1.0) / n_b + chi * (1.0 - 2.0 * phi)


def curvature(phi, chi: float, n_a: float = 1.0, n_b: float = 1.0):
    """f''(φ) = 1/(N_A φ) + 1/(N_B (1−φ)) − 2χ."""
    phi = np.asarray(phi, dtype=float)
    return 1.0 / (n_a * phi) + 1.0 / (n_b * (1.0 - phi)) - 2.0 * chi


def default_stabilization(chi: float, phi0: float, n_a: float = 1.0, n_b: float = 1.0) -> float:
    """Default ``A``: max |f''| between the two minima of f (see module docstring)."""
    grid = np.linspace(1e-5, 1.0 - 1e-5, 200_001)
    fp = chemical_potential(grid, chi, n_a, n_b, eps=1e-12)
    # Minima of f: f' crosses zero upwards.
    up = np.flatnonzero((fp[:-1] < 0) & (fp[1:] >= 0))
    if len(up) >= 2:
        lo, hi = grid[up[0]], grid[up[-1] + 1]
    else:  # single well (outside the miscibility gap): the curvature at φ₀ and its minimum
        lo = hi = grid[up[0]] if len(up) else phi0
        lo, hi = min(lo, phi0), max(hi, phi0)
    span = np.linspace(lo, hi, 1001)
    return float(max(np.abs(curvature(span, chi, n_a, n_b)).max(), 1e-3))


def log_spaced_steps(n_steps: int, n_snapshots: int, first: int = 1) -> tuple[int, ...]:
    """``n_snapshots`` distinct integer steps, log-spaced from ``first`` to ``n_steps``.

    Where rounding would repeat a step the next integer is taken, so the result always has
    exactly ``n_snapshots`` entries (requires ``n_snapshots <= n_steps - first + 1``).
    """
    if not 1 <= first <= n_steps:
        raise ValueError(f"need 1 <= first ({first}) <= n_steps ({n_steps})")
    if not 1 <= n_snapshots <= n_steps - first + 1:
        raise ValueError(
            f"cannot place {n_snapshots} distinct snapshots in steps {first}..{n_steps}"
        )
    raw = np.geomspace(first, n_steps, n_snapshots)
    steps: list[int] = []
    for i, r in enumerate(raw):
        s = max(int(round(r)), steps[-1] + 1 if steps else first)
        # leave room for the remaining snapshots below n_steps
        s = min(s, n_steps - (n_snapshots - 1 - i))
        steps.append(s)
    return tuple(steps)


@dataclass(frozen=True)
class CahnHilliardParams:
    """Parameters of one Cahn–Hilliard run (lengths in voxels, dimensionless time).

    shape : grid, e.g. ``(128, 128, 64)`` (paper) or ``(32, 32, 32)`` (embedded default).
    phi0 : initial blend ratio (mean acceptor fraction), in (0, 1).
    chi : Flory–Huggins interaction parameter.
    kappa : gradient-energy coefficient κ (interface width ~ sqrt(κ / |f''|) voxels).
    mobility : M.
    n_a, n_b : degrees of polymerisation of the φ component (acceptor) and the other (donor).
    dt, n_steps : time step and number of steps.
    save_steps : explicit steps (1..n_steps, increasing) at which to save; if ``None``,
        ``n_snapshots`` log-spaced steps starting at ``first_save_step``.
    noise : amplitude of the zero-mean uniform initial noise.
    seed : seed of the initial noise.
    stabilization : ``A`` of the scheme; ``None`` → :func:`default_stabilization`.
    eps : clipping of φ into (ε, 1−ε) inside logarithms.
    workers : threads for ``scipy.fft`` (``-1``: all cores).
    """

    shape: tuple[int, ...] = (32, 32, 32)
    phi0: float = 0.5
    chi: float = 2.5
    kappa: float = 1.0
    mobility: float = 1.0
    n_a: float = 1.0
    n_b: float = 1.0
    dt: float = 0.5
    n_steps: int = 400
    save_steps: tuple[int, ...] | None = None
    n_snapshots: int = 16
    first_save_step: int = 10
    noise: float = 0.01
    seed: int = 0
    stabilization: float | None = None
    eps: float = 1e-6
    workers: int = -1

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if not self.shape or any(s < 2 for s in self.shape):
            raise ValueError(f"shape must be a tuple of sizes >= 2, got {self.shape}")
        if not 0.0 < self.phi0 < 1.0:
            raise ValueError(f"phi0 must lie in (0, 1), got {self.phi0}")
        for name in ("kappa", "mobility", "n_a", "n_b", "dt"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.n_steps < 1:
            raise ValueError(f"n_steps must be >= 1, got {self.n_steps}")
        if self.noise < 0 or self.noise >= min(self.phi0, 1 - self.phi0):
            raise ValueError(f"noise must lie in [0, min(phi0, 1-phi0)), got {self.noise}")
        if self.stabilization is not None and self.stabilization < 0:
            raise ValueError("stabilization must be >= 0")
        if self.save_steps is not None:
            steps = tuple(int(s) for s in self.save_steps)
            if not steps or any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
                raise ValueError("save_steps must be a non-empty strictly increasing sequence")
            if steps[0] < 0 or steps[-1] > self.n_steps:
                raise ValueError(f"save_steps must lie in 0..n_steps ({self.n_steps})")
            object.__setattr__(self, "save_steps", steps)
        else:
            log_spaced_steps(self.n_steps, self.n_snapshots, self.first_save_step)

    @property
    def steps_to_save(self) -> tuple[int, ...]:
        if self.save_steps is not None:
            return self.save_steps
        return log_spaced_steps(self.n_steps, self.n_snapshots, self.first_save_step)

    @property
    def stabilization_value(self) -> float:
        if self.stabilization is not None:
            return float(self.stabilization)
        return default_stabilization(self.chi, self.phi0, self.n_a, self.n_b)


@dataclass
class Snapshot:
    step: int
    time: float
    phi: np.ndarray

    @property
    def log_time(self) -> float:
        return math.log10(self.time) if self.time > 0 else float("-inf")


@dataclass
class CahnHilliardResult:
    """Saved snapshots of one run (``snapshots[i]`` is φ at ``steps[i]``)."""

    params: CahnHilliardParams
    steps: np.ndarray
    times: np.ndarray
    snapshots: np.ndarray  # (n_saved, *shape), float64
    free_energy: np.ndarray = field(default_factory=lambda: np.empty(0))

    @property
    def log_time(self) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log10(self.times)


def _wavenumbers_sq(shape: tuple[int, ...]) -> np.ndarray:
    """|k|² on the rfftn grid of ``shape`` (unit voxel spacing)."""
    axes = [2 * np.pi * np.fft.fftfreq(n) for n in shape[:-1]]
    axes.append(2 * np.pi * np.fft.rfftfreq(shape[-1]))
    k2 = np.zeros([len(a) for a in axes])
    for i, a in enumerate(axes):
        sh = [1] * len(shape)
        sh[i] = len(a)
        k2 = k2 + a.reshape(sh) ** 2
    return k2


def initial_condition(params: CahnHilliardParams) -> np.ndarray:
    """φ₀ plus zero-mean uniform noise in [-noise, noise] (seeded)."""
    rng = np.random.default_rng(params.seed)
    xi = rng.uniform(-1.0, 1.0, size=params.shape)
    xi -= xi.mean()
    xi *= params.noise / max(np.abs(xi).max(), 1e-300)
    return params.phi0 + xi


def total_free_energy(phi: np.ndarray, params: CahnHilliardParams) -> float:
    """Mean free-energy density ⟨f(φ) + κ/2 |∇φ|²⟩ (spectral gradient, periodic)."""
    bulk = free_energy_density(phi, params.chi, params.n_a, params.n_b, params.eps).mean()
    ph = sfft.rfftn(phi, workers=params.workers)
    k2 = _wavenumbers_sq(phi.shape)
    # Parseval on the half spectrum: interior rfft planes count twice.
    w = np.full(ph.shape[-1], 2.0)
    w[0] = 1.0
    if phi.shape[-1] % 2 == 0:
        w[-1] = 1.0
    grad2 = float((w * k2 * np.abs(ph) ** 2).sum()) / phi.size**2
    return float(bulk + 0.5 * params.kappa * grad2)


def iter_cahn_hilliard(params: CahnHilliardParams, every_step: bool = False) -> Iterator[Snapshot]:
    """Run the simulation lazily, yielding a :class:`Snapshot` at each saved step.

    ``every_step=True`` yields after every step (tests); the yielded array is a copy.
    Step 0 is yielded only if it is in ``save_steps``.
    """
    p = params
    shape = p.shape
    A = p.stabilization_value
    k2 = _wavenumbers_sq(shape)
    lin = 1.0 + p.dt * p.mobility * A * k2
    denom = 1.0 + p.dt * p.mobility * (A * k2 + p.kappa * k2 * k2)
    expl = p.dt * p.mobility * k2
    save = set(p.steps_to_save)

    phi = initial_condition(p)
    ph = sfft.rfftn(phi, workers=p.workers)
    if every_step or 0 in save:
        yield Snapshot(0, 0.0, phi.copy())
    for step in range(1, p.n_steps + 1):
        mu = chemical_potential(phi, p.chi, p.n_a, p.n_b, p.eps)
        mh = sfft.rfftn(mu, workers=p.workers)
        ph = (lin * ph - expl * mh) / denom
        phi = sfft.irfftn(ph, s=shape, workers=p.workers)
        if every_step or step in save:
            yield Snapshot(step, step * p.dt, phi.copy())


def simulate(params: CahnHilliardParams, compute_energy: bool = True) -> CahnHilliardResult:
    """Run one simulation and collect its snapshots (and free energy at each)."""
    snaps = list(iter_cahn_hilliard(params))
    energy = (
        np.array([total_free_energy(s.phi, params) for s in snaps])
        if compute_energy
        else np.empty(0)
    )
    return CahnHilliardResult(
        params=params,
        steps=np.array([s.step for s in snaps]),
        times=np.array([s.time for s in snaps]),
        snapshots=np.stack([s.phi for s in snaps]),
        free_energy=energy,
    )


def characteristic_length(phi: np.ndarray) -> float:
    """2π / ⟨k⟩, the first moment of the spherically averaged structure factor S(k).

    S(k) = |φ̂(k) − φ̂(0)δ_k0|²; the k = 0 mode is excluded. Grows as domains coarsen.
    """
    ph = np.fft.fftn(phi - phi.mean())
    s = np.abs(ph) ** 2
    axes = [2 * np.pi * np.fft.fftfreq(n) for n in phi.shape]
    grids = np.meshgrid(*axes, indexing="ij")
    k = np.sqrt(sum(g**2 for g in grids))
    mask = k > 0
    kmean = (k[mask] * s[mask]).sum() / s[mask].sum()
    return float(2 * np.pi / kmean)
