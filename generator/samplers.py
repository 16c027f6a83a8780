"""A1111's sampler names and the diffusers scheduler each one is, or genimg's own.

Data only, so validating a spec needs no diffusers import; ``render.diffusion``
builds the scheduler. A new sampler is one line here (and, for one genimg draws
itself, its loop in ``render/ksamplers.py``).
"""

from __future__ import annotations

from typing import Any

#: The scheduler "class" of the samplers only genimg draws (``render/kscheduler.py``).
OWN = "genimg"

#: A1111 sampler name -> (diffusers scheduler class, extra scheduler config).
SAMPLERS: dict[str, tuple[str, dict[str, Any]]] = {
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Euler": ("EulerDiscreteScheduler", {}),
    "LMS": ("LMSDiscreteScheduler", {}),
    "LMS Karras": ("LMSDiscreteScheduler", {"use_karras_sigmas": True}),
    "Heun": ("HeunDiscreteScheduler", {}),
    "DPM2": ("KDPM2DiscreteScheduler", {}),
    "DPM2 a": ("KDPM2AncestralDiscreteScheduler", {}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "DPM++ SDE": ("DPMSolverSinglestepScheduler", {}),
    "DPM++ 2M SDE": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "DDIM": ("DDIMScheduler", {}),
    "PLMS": ("PNDMScheduler", {}),
    "PNDM": ("PNDMScheduler", {}),
    "UniPC": ("UniPCMultistepScheduler", {}),
    "DPM++ 2S a": (OWN, {}),
    "DPM++ 2M SDE Heun": (OWN, {}),
    "DPM++ 3M SDE": (OWN, {}),
    "DPM fast": (OWN, {}),
    "Restart": (OWN, {}),
}

#: ``sampling``: ``a1111`` draws A1111's k-diffusion samplers with genimg's own loops
#: (``render/ksamplers.py``, step for step as k-diffusion), ``diffusers`` with diffusers'
#: schedulers as genimg always did. The samplers diffusers lacks are always genimg's.
SAMPLINGS = ("diffusers", "a1111")
#: The k-diffusion samplers genimg draws itself (the base name of ``LMS Karras``, ``DPM++
#: 2M Karras``: their schedule is Karras).
K_SAMPLERS = ("Euler a", "Euler", "LMS", "Heun", "DPM2", "DPM2 a", "DPM++ 2S a", "DPM++ 2M",
              "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE", "DPM fast",
              "Restart")
#: A1111 samplers genimg refuses, and why.
REFUSED = {"DPM adaptive": "its step sizes depend on the picture (an error estimate at each "
                           "step), and genimg's pipelines run a number of model calls known "
                           "before sampling"}

#: The samplers A1111 draws fresh noise for at each step: ENSD changes their pictures
#: (and only theirs does A1111's infotext name).
ANCESTRAL = ("Euler a", "DPM2 a", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2S a", "DPM fast",
             "Restart")
#: With ``sampling: a1111``, the SDE samplers' noise is A1111's Brownian tree, seeded by
#: the picture's seed alone: ENSD changes nothing there.
BROWNIAN = ("DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE")

#: A1111 >= 1.9's ``Schedule type``s genimg renders. ``Automatic`` is each sampler's own
#: (``AUTOMATIC``); the others give diffusers' schedulers these options.
SCHEDULE_OPTIONS: dict[str, dict[str, Any]] = {
    "Uniform": {},
    "Karras": {"use_karras_sigmas": True},
    "Exponential": {"use_exponential_sigmas": True},
}
SCHEDULE_TYPES = ("Automatic", *SCHEDULE_OPTIONS)
#: A1111's Automatic schedule of a sampler (its k-diffusion sampler table); Uniform if
#: not named here.
AUTOMATIC = {"DPM++ 2M": "Karras", "DPM++ SDE": "Karras", "DPM++ 2M SDE": "Exponential",
             "DPM2": "Karras", "DPM2 a": "Karras", "DPM++ 2S a": "Karras",
             "DPM++ 2M SDE Heun": "Exponential", "DPM++ 3M SDE": "Exponential",
             "Restart": "Karras"}
#: The schedules whose sigmas genimg's scheduler for the sampler makes as k-diffusion
#: makes them for A1111 (tests/test_schedules.py compares them): a sampler and schedule
#: not listed is refused rather than drawn with other sigmas.
EXACT_SCHEDULES: dict[str, tuple[str, ...]] = {
    "Euler a": ("Uniform",),
    "Euler": ("Uniform", "Karras", "Exponential"),
    "LMS": ("Uniform", "Karras", "Exponential"),
    "DPM++ 2M": ("Karras", "Exponential"),
    "DPM++ SDE": ("Karras", "Exponential"),
    "DPM++ 2M SDE": ("Karras", "Exponential"),
    "UniPC": ("Karras", "Exponential"),
}


def schedule_of(sampler: str, schedule_type: str) -> str:
    """The schedule A1111 runs for ``sampler`` with ``schedule_type`` (Automatic resolved)."""
    return AUTOMATIC.get(sampler, "Uniform") if schedule_type == "Automatic" else schedule_type


def draws_itself(sampler: str, sampling: str = "diffusers") -> bool:
    """Does genimg's own k-diffusion loop draw ``sampler`` (else a diffusers scheduler)?"""
    return SAMPLERS[sampler][0] == OWN or (
        sampling == "a1111" and k_sampler(sampler)[0] in K_SAMPLERS)


def k_sampler(sampler: str, schedule_type: str | None = None) -> tuple[str, str]:
    """The k-diffusion sampler and A1111 schedule genimg's loop draws ``sampler`` with."""
    if schedule_type is None and sampler.endswith(" Karras"):
        return sampler.removesuffix(" Karras"), "Karras"
    return sampler, schedule_of(sampler, schedule_type or "Automatic")


def schedule_problem(sampler: str, schedule_type: str, sampling: str = "diffusers"
                     ) -> str | None:
    """Why genimg cannot draw ``sampler`` with A1111's ``schedule_type``, or None."""
    schedule = schedule_of(sampler, schedule_type)
    if sampler.endswith(" Karras"):
        return (f"'sampler: {sampler}' names its schedule already: write 'sampler: "
                f"{sampler.removesuffix(' Karras')}' with 'schedule_type: Karras'")
    exact = EXACT_SCHEDULES.get(sampler, ())
    if schedule in exact or draws_itself(sampler, sampling):
        return None
    which = f"{schedule_type} ({schedule})" if schedule != schedule_type else schedule
    can = ", ".join(exact) if exact else "none"
    hint = ("; with 'sampling: a1111' genimg draws every schedule as A1111 does"
            if sampler in K_SAMPLERS else
            "; A1111 draws it with its own sampler, not k-diffusion's, and diffusers' "
            "differs in its sigmas")
    return f"genimg cannot draw {sampler!r} with the {which} schedule (it can: {can}){hint}"


def scheduler_for(sampler: str, schedule_type: str | None) -> tuple[str, dict[str, Any]]:
    """The diffusers scheduler class and options of ``sampler`` (with A1111's schedule)."""
    cls, options = SAMPLERS[sampler]
    if schedule_type is None:
        return cls, options
    return cls, {**options, **SCHEDULE_OPTIONS[schedule_of(sampler, schedule_type)]}
