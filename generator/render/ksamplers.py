"""A1111's k-diffusion samplers, written for genimg: the same math, step for step.

A1111 samples with Katherine Crowson's k-diffusion; diffusers lacks several of its
samplers and draws others differently. Each sampler here is k-diffusion's loop (same
expressions, same float32 tensor arithmetic, so the same rounding) written as a Python
generator: ``denoised = yield x, sigma`` asks for the model's denoised picture at ``x``
and ``sigma``; the generator returns the final latent. That turns a sampler into the
diffusers scheduler interface (``render/kscheduler.py``) without owning the UNet call,
so diffusers' pipelines keep doing prompts, img2img, SDXL and decoding.

k-diffusion itself is only the test oracle (``tests/test_ksamplers.py``), never imported.
A sampler's model calls depend on its sigmas only (never on the picture), so the
scheduler can list them before sampling (``evaluation_sigmas``); DPM adaptive, whose
steps depend on the picture, is therefore not here.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Generator
from typing import Any

Tensor = Any  # torch.Tensor; torch is imported inside functions only
#: ``noise(sigma, sigma_next)``: one picture-sized noise per call, per picture.
Noise = Callable[[Tensor, Tensor], Tensor]
Sampling = Generator[tuple[Tensor, Tensor], Tensor, Tensor]


def _to_d(x: Tensor, sigma: Tensor, denoised: Tensor) -> Tensor:
    return (x - denoised) / sigma


def ancestral_step(sigma_from: Tensor, sigma_to: Tensor, eta: float = 1.0
                   ) -> tuple[Tensor, Tensor]:
    """k-diffusion's ``get_ancestral_step``: where to step down to and how much noise to add."""
    if not eta:
        return sigma_to, 0.0
    sigma_up = min(sigma_to, eta * (sigma_to ** 2 * (sigma_from ** 2 - sigma_to ** 2)
                                    / sigma_from ** 2) ** 0.5)
    return (sigma_to ** 2 - sigma_up ** 2) ** 0.5, sigma_up


def euler(x: Tensor, sigmas: Tensor, noise: Noise) -> Sampling:
    for i in range(len(sigmas) - 1):
        denoised = yield x, sigmas[i]
        x = x + _to_d(x, sigmas[i], denoised) * (sigmas[i + 1] - sigmas[i])
    return x


def euler_ancestral(x: Tensor, sigmas: Tensor, noise: Noise) -> Sampling:
    for i in range(len(sigmas) - 1):
        denoised = yield x, sigmas[i]
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1])
        x = x + _to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        if sigmas[i + 1] > 0:
            x = x + noise(sigmas[i], sigmas[i + 1]) * sigma_up
    return x


def heun(x: Tensor, sigmas: Tensor, noise: Noise) -> Sampling:
    for i in range(len(sigmas) - 1):
        denoised = yield x, sigmas[i]
        d = _to_d(x, sigmas[i], denoised)
        dt = sigmas[i + 1] - sigmas[i]
        if sigmas[i + 1] == 0:
            x = x + d * dt
        else:
            x_2 = x + d * dt
            denoised_2 = yield x_2, sigmas[i + 1]
            x = x + (d + _to_d(x_2, sigmas[i + 1], denoised_2)) / 2 * dt
    return x


def dpm_2(x: Tensor, sigmas: Tensor, noise: Noise) -> Sampling:
    for i in range(len(sigmas) - 1):
        denoised = yield x, sigmas[i]
        d = _to_d(x, sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = x + d * (sigmas[i + 1] - sigmas[i])
        else:
            sigma_mid = sigmas[i].log().lerp(sigmas[i + 1].log(), 0.5).exp()
            x_2 = x + d * (sigma_mid - sigmas[i])
            denoised_2 = yield x_2, sigma_mid
            x = x + _to_d(x_2, sigma_mid, denoised_2) * (sigmas[i + 1] - sigmas[i])
    return x


def dpm_2_ancestral(x: Tensor, sigmas: Tensor, noise: Noise) -> Sampling:
    for i in range(len(sigmas) - 1):
        denoised = yield x, sigmas[i]
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1])
        d = _to_d(x, sigmas[i], denoised)
        if sigma_down == 0:
            x = x + d * (sigma_down - sigmas[i])
        else:
            sigma_mid = sigmas[i].log().lerp(sigma_down.log(), 0.5).exp()
            x_2 = x + d * (sigma_mid - sigmas[i])
            denoised_2 = yield x_2, sigma_mid
            x = x + _to_d(x_2, sigma_mid, denoised_2) * (sigma_down - sigmas[i])
            x = x + noise(sigmas[i], sigmas[i + 1]) * sigma_up
    return x


def lms_coefficient(order: int, t: Any, i: int, j: int) -> float:
    """The integral of the ``j``-th Lagrange basis polynomial over ``[t[i], t[i + 1]]``:
    k-diffusion integrates it numerically (``scipy.integrate.quad``), here exactly."""
    import numpy as np

    basis = np.polynomial.Polynomial([1.0])
    for k in range(order):
        if k != j:
            basis *= np.polynomial.Polynomial([-t[i - k], 1.0]) / (t[i - j] - t[i - k])
    integral = basis.integ()
    return float(integral(t[i + 1]) - integral(t[i]))


def lms(x: Tensor, sigmas: Tensor, noise: Noise, order: int = 4) -> Sampling:
    points = sigmas.detach().cpu().double().numpy()
    ds: list[Tensor] = []
    for i in range(len(sigmas) - 1):
        denoised = yield x, sigmas[i]
        ds = [*ds, _to_d(x, sigmas[i], denoised)][-order:]
        now = min(i + 1, order)
        coefficients = [lms_coefficient(now, points, i, j) for j in range(now)]
        x = x + sum(c * d for c, d in zip(coefficients, reversed(ds), strict=True))
    return x


def _sigma_fn(t: Tensor) -> Tensor:
    return t.neg().exp()


def _t_fn(sigma: Tensor) -> Tensor:
    return sigma.log().neg()


def dpmpp_2s_ancestral(x: Tensor, sigmas: Tensor, noise: Noise) -> Sampling:
    for i in range(len(sigmas) - 1):
        denoised = yield x, sigmas[i]
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1])
        if sigma_down == 0:
            x = x + _to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        else:
            t, t_next = _t_fn(sigmas[i]), _t_fn(sigma_down)
            h = t_next - t
            s = t + 0.5 * h
            x_2 = (_sigma_fn(s) / _sigma_fn(t)) * x - (-h * 0.5).expm1() * denoised
            denoised_2 = yield x_2, _sigma_fn(s)
            x = (_sigma_fn(t_next) / _sigma_fn(t)) * x - (-h).expm1() * denoised_2
        if sigmas[i + 1] > 0:
            x = x + noise(sigmas[i], sigmas[i + 1]) * sigma_up
    return x


def dpmpp_sde(x: Tensor, sigmas: Tensor, noise: Noise, r: float = 0.5) -> Sampling:
    for i in range(len(sigmas) - 1):
        denoised = yield x, sigmas[i]
        if sigmas[i + 1] == 0:
            x = x + _to_d(x, sigmas[i], denoised) * (sigmas[i + 1] - sigmas[i])
            continue
        t, t_next = _t_fn(sigmas[i]), _t_fn(sigmas[i + 1])
        h = t_next - t
        s = t + h * r
        fac = 1 / (2 * r)
        sd, su = ancestral_step(_sigma_fn(t), _sigma_fn(s))
        s_ = _t_fn(sd)
        x_2 = (_sigma_fn(s_) / _sigma_fn(t)) * x - (t - s_).expm1() * denoised
        x_2 = x_2 + noise(_sigma_fn(t), _sigma_fn(s)) * su
        denoised_2 = yield x_2, _sigma_fn(s)
        sd, su = ancestral_step(_sigma_fn(t), _sigma_fn(t_next))
        t_next_ = _t_fn(sd)
        denoised_d = (1 - fac) * denoised + fac * denoised_2
        x = (_sigma_fn(t_next_) / _sigma_fn(t)) * x - (t - t_next_).expm1() * denoised_d
        x = x + noise(_sigma_fn(t), _sigma_fn(t_next)) * su
    return x


def dpmpp_2m(x: Tensor, sigmas: Tensor, noise: Noise) -> Sampling:
    old_denoised = None
    for i in range(len(sigmas) - 1):
        denoised = yield x, sigmas[i]
        t, t_next = _t_fn(sigmas[i]), _t_fn(sigmas[i + 1])
        h = t_next - t
        if old_denoised is None or sigmas[i + 1] == 0:
            x = (_sigma_fn(t_next) / _sigma_fn(t)) * x - (-h).expm1() * denoised
        else:
            r = (t - _t_fn(sigmas[i - 1])) / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (_sigma_fn(t_next) / _sigma_fn(t)) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
    return x


def dpmpp_2m_sde(x: Tensor, sigmas: Tensor, noise: Noise, eta: float = 1.0,
                 heun: bool = False) -> Sampling:
    """DPM++ 2M SDE with k-diffusion's midpoint solver (A1111's ``DPM++ 2M SDE``) or its
    Heun solver (``DPM++ 2M SDE Heun``)."""
    old_denoised, h_last, h = None, None, None
    for i in range(len(sigmas) - 1):
        denoised = yield x, sigmas[i]
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            t, s = -sigmas[i].log(), -sigmas[i + 1].log()
            h = s - t
            eta_h = eta * h
            x = (sigmas[i + 1] / sigmas[i] * (-eta_h).exp() * x
                 + (-h - eta_h).expm1().neg() * denoised)
            if old_denoised is not None:
                r = h_last / h
                if heun:
                    x = x + (((-h - eta_h).expm1().neg() / (-h - eta_h) + 1) * (1 / r)
                             * (denoised - old_denoised))
                else:
                    x = x + 0.5 * (-h - eta_h).expm1().neg() * (1 / r) * (denoised - old_denoised)
            x = x + (noise(sigmas[i], sigmas[i + 1]) * sigmas[i + 1]
                     * (-2 * eta_h).expm1().neg().sqrt())
        old_denoised, h_last = denoised, h
    return x


def dpmpp_3m_sde(x: Tensor, sigmas: Tensor, noise: Noise, eta: float = 1.0) -> Sampling:
    denoised_1, denoised_2, h, h_1, h_2 = None, None, None, None, None
    for i in range(len(sigmas) - 1):
        denoised = yield x, sigmas[i]
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            t, s = -sigmas[i].log(), -sigmas[i + 1].log()
            h = s - t
            h_eta = h * (eta + 1)
            x = (-h_eta).exp() * x + (-h_eta).expm1().neg() * denoised
            x = x + _third_order(denoised, denoised_1, denoised_2, h, h_1, h_2, h_eta)
            x = x + (noise(sigmas[i], sigmas[i + 1]) * sigmas[i + 1]
                     * (-2 * h * eta).expm1().neg().sqrt())
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = h, h_1
    return x


def _third_order(denoised: Tensor, denoised_1: Any, denoised_2: Any,
                 h: Tensor, h_1: Any, h_2: Any, h_eta: Tensor) -> Any:
    """DPM++ 3M SDE's correction from the previous steps' denoised pictures."""
    if h_2 is not None:
        r0, r1 = h_1 / h, h_2 / h
        d1_0 = (denoised - denoised_1) / r0
        d1_1 = (denoised_1 - denoised_2) / r1
        d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
        d2 = (d1_0 - d1_1) / (r0 + r1)
        phi_2 = h_eta.neg().expm1() / h_eta + 1
        phi_3 = phi_2 / h_eta - 0.5
        return phi_2 * d1 - phi_3 * d2
    if h_1 is not None:
        d = (denoised - denoised_1) / (h_1 / h)
        return (h_eta.neg().expm1() / h_eta + 1) * d
    return 0.0


def _eps(x: Tensor, t: Tensor) -> Generator[tuple[Tensor, Tensor], Tensor, Tensor]:
    """DPM-Solver's noise prediction at ``x`` and log-time ``t``."""
    denoised = yield x, _sigma_fn(t)
    return (x - denoised) / _sigma_fn(t)


def _dpm_solver_step(x: Tensor, t: Tensor, t_next: Tensor, order: int, eps: Tensor
                     ) -> Generator[tuple[Tensor, Tensor], Tensor, Tensor]:
    """k-diffusion's ``DPMSolver.dpm_solver_{1,2,3}_step`` (``eps`` at ``x``, ``t`` known)."""
    h = t_next - t
    first = x - _sigma_fn(t_next) * h.expm1() * eps
    if order == 1:
        return first
    if order == 2:
        r1 = 1 / 2
        s1 = t + r1 * h
        u1 = x - _sigma_fn(s1) * (r1 * h).expm1() * eps
        eps_r1 = yield from _eps(u1, s1)
        return first - _sigma_fn(t_next) / (2 * r1) * h.expm1() * (eps_r1 - eps)
    r1, r2 = 1 / 3, 2 / 3
    s1, s2 = t + r1 * h, t + r2 * h
    u1 = x - _sigma_fn(s1) * (r1 * h).expm1() * eps
    eps_r1 = yield from _eps(u1, s1)
    u2 = (x - _sigma_fn(s2) * (r2 * h).expm1() * eps
          - _sigma_fn(s2) * (r2 / r1) * ((r2 * h).expm1() / (r2 * h) - 1) * (eps_r1 - eps))
    eps_r2 = yield from _eps(u2, s2)
    return first - _sigma_fn(t_next) / r2 * (h.expm1() / h - 1) * (eps_r2 - eps)


def dpm_fast(x: Tensor, sigmas: Tensor, noise: Noise, eta: float = 1.0) -> Sampling:
    """DPM-Solver-Fast from ``sigmas[0]`` down to ``sigmas[-2]`` in ``len(sigmas) - 1``
    model calls (A1111 gives k-diffusion exactly these), with A1111's eta of 1."""
    import torch

    nfe = len(sigmas) - 1
    t_start = _t_fn(torch.tensor(float(sigmas[0])))
    t_end = _t_fn(torch.tensor(float(sigmas[-2])))
    m = math.floor(nfe / 3) + 1
    ts = torch.linspace(t_start, t_end, m + 1)
    orders = [3] * (m - 2) + [2, 1] if nfe % 3 == 0 else [3] * (m - 1) + [nfe % 3]
    for i, order in enumerate(orders):
        t, t_next = ts[i], ts[i + 1]
        sd, _ = ancestral_step(_sigma_fn(t), _sigma_fn(t_next), eta)
        t_next_ = torch.minimum(t_end, _t_fn(sd))
        su = (_sigma_fn(t_next) ** 2 - _sigma_fn(t_next_) ** 2) ** 0.5
        eps = yield from _eps(x, t)
        x = yield from _dpm_solver_step(x, t, t_next_, order, eps)
        x = x + su * noise(_sigma_fn(t), _sigma_fn(t_next))
    return x


def _heun_step(x: Tensor, old: Tensor, new: Tensor
               ) -> Generator[tuple[Tensor, Tensor], Tensor, Tensor]:
    denoised = yield x, old
    d = _to_d(x, old, denoised)
    dt = new - old
    if new == 0:
        return x + d * dt
    x_2 = x + d * dt
    denoised_2 = yield x_2, new
    return x + (d + _to_d(x_2, new, denoised_2)) / 2 * dt


def _restart_steps(sigmas: Tensor) -> list[tuple[Tensor, Tensor]]:
    """A1111's Restart (``sd_samplers_extra.restart_sampler``): from 20 steps on, fewer
    Karras steps and a jump back up to sigma 2 once (twice from 36 steps) at sigma 0.1."""
    import torch

    steps = sigmas.shape[0] - 1
    restart_list: dict[float, list[int]] = {}
    if steps >= 20:
        restart_steps, restart_times = (steps // 4, 2) if steps >= 36 else (9, 1)
        sigmas = karras(steps - restart_steps * restart_times, sigmas[-2].item(),
                        sigmas[0].item())
        restart_list = {0.1: [restart_steps + 1, restart_times, 2]}
    at = {int(torch.argmin(abs(sigmas - key), dim=0)): value
          for key, value in restart_list.items()}
    step_list = []
    for i in range(len(sigmas) - 1):
        step_list.append((sigmas[i], sigmas[i + 1]))
        if i + 1 in at:
            restart_steps, restart_times, restart_max = at[i + 1]
            min_idx, max_idx = i + 1, int(torch.argmin(abs(sigmas - restart_max), dim=0))
            if max_idx < min_idx:
                up = karras(restart_steps, sigmas[min_idx].item(), sigmas[max_idx].item())[:-1]
                step_list.extend(list(itertools.pairwise(up)) * restart_times)
    return step_list


def restart(x: Tensor, sigmas: Tensor, noise: Noise) -> Sampling:
    last_sigma = None
    for old_sigma, new_sigma in _restart_steps(sigmas):
        if last_sigma is None:
            last_sigma = old_sigma
        elif last_sigma < old_sigma:
            x = x + noise(old_sigma, last_sigma) * (old_sigma ** 2 - last_sigma ** 2) ** 0.5
        x = yield from _heun_step(x, old_sigma, new_sigma)
        last_sigma = new_sigma
    return x


# --- sigma schedules ------------------------------------------------------------------


def _append_zero(sigmas: Tensor) -> Tensor:
    import torch

    return torch.cat([sigmas, sigmas.new_zeros([1])])


def karras(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> Tensor:
    """Karras et al. (2022)'s schedule, as k-diffusion's ``get_sigmas_karras``."""
    import torch

    ramp = torch.linspace(0, 1, n)
    min_inv_rho, max_inv_rho = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return _append_zero((max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho)


def exponential(n: int, sigma_min: float, sigma_max: float) -> Tensor:
    import torch

    return _append_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), n).exp())


class DiscreteSchedule:
    """A model's 1000 training noise levels, as k-diffusion's ``DiscreteSchedule``: sigma
    from a (fractional) timestep and back, interpolating log sigmas, as A1111 runs it
    (no quantization)."""

    def __init__(self, alphas_cumprod: Tensor) -> None:
        self.sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
        self.log_sigmas = self.sigmas.log()

    def t_to_sigma(self, t: Tensor) -> Tensor:
        t = t.float()
        low, high, w = t.floor().long(), t.ceil().long(), t.frac()
        return ((1 - w) * self.log_sigmas[low] + w * self.log_sigmas[high]).exp()

    def sigma_to_t(self, sigma: Tensor) -> Tensor:
        log_sigma = sigma.log()
        dists = log_sigma - self.log_sigmas[:, None]
        low_idx = dists.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=len(self.log_sigmas) - 2)
        low, high = self.log_sigmas[low_idx], self.log_sigmas[low_idx + 1]
        w = ((low - log_sigma) / (low - high)).clamp(0, 1)
        return ((1 - w) * low_idx + w * (low_idx + 1)).view(sigma.shape)

    def uniform(self, n: int) -> Tensor:
        """k-diffusion's ``get_sigmas(n)``: A1111's Automatic for most samplers."""
        import torch

        return _append_zero(self.t_to_sigma(torch.linspace(len(self.sigmas) - 1, 0, n)))

    def schedule(self, name: str, steps: int, discard_penultimate: bool = False) -> Tensor:
        """A1111's sigmas for ``steps`` steps of schedule ``name`` (Uniform, Karras,
        Exponential), the next-to-last dropped for the samplers that ask for it."""
        import torch

        n = steps + 1 if discard_penultimate else steps
        low, high = self.sigmas[0].item(), self.sigmas[-1].item()
        sigmas = {"Uniform": lambda: self.uniform(n), "Karras": lambda: karras(n, low, high),
                  "Exponential": lambda: exponential(n, low, high)}[name]()
        return torch.cat([sigmas[:-2], sigmas[-1:]]) if discard_penultimate else sigmas


#: A1111's k-diffusion samplers: name -> (the sampler, its noise: "ancestral" (the
#: picture's generator, as A1111's ``randn_like``), "brownian" (a Brownian tree seeded by
#: the picture's seed) or None, and whether A1111 drops the next-to-last sigma).
SAMPLERS: dict[str, tuple[Callable[..., Sampling], str | None, bool]] = {
    "Euler a": (euler_ancestral, "ancestral", False),
    "Euler": (euler, None, False),
    "LMS": (lms, None, False),
    "Heun": (heun, None, False),
    "DPM2": (dpm_2, None, True),
    "DPM2 a": (dpm_2_ancestral, "ancestral", True),
    "DPM++ 2S a": (dpmpp_2s_ancestral, "ancestral", False),
    "DPM++ 2M": (dpmpp_2m, None, False),
    "DPM++ SDE": (dpmpp_sde, "brownian", False),
    "DPM++ 2M SDE": (dpmpp_2m_sde, "brownian", False),
    "DPM++ 2M SDE Heun": (functools.partial(dpmpp_2m_sde, heun=True), "brownian", False),
    "DPM++ 3M SDE": (dpmpp_3m_sde, "brownian", True),
    "DPM fast": (dpm_fast, "ancestral", False),
    "Restart": (restart, "ancestral", False),
}


def evaluation_sigmas(sampler: str, sigmas: Tensor) -> list[Tensor]:
    """The sigma of each model call ``sampler`` makes over ``sigmas``, in order: a dry run
    on a one-number latent with zero noise (the calls depend on the sigmas only)."""
    import torch

    run = SAMPLERS[sampler][0](torch.zeros(1), sigmas, lambda _s, _n: torch.zeros(1))
    calls = []
    try:
        _, sigma = next(run)
        while True:
            calls.append(sigma)
            _, sigma = run.send(torch.zeros(1))
    except StopIteration:
        return calls
